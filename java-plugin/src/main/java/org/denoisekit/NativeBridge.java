package org.denoisekit;

import java.io.File;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URL;
import java.util.ArrayList;
import java.util.List;

/**
 * The only class with native methods. Public methods load the library on first use and
 * report any failure as a {@link DenoiseKitException}, never as an UnsatisfiedLinkError.
 *
 * <p>The library is looked for, in order: the system property {@code denoisekit.library}
 * (an absolute path), a copy bundled in this jar under {@code natives/<os>-<arch>/}
 * (extracted once into a cache folder named after its content, see {@link #cacheRoots()}),
 * the folder that holds this jar, and finally {@code java.library.path}.
 */
public final class NativeBridge {
    private static final String LIB = "denoisekit";
    /** Every platform a release jar carries, as {@link #platform()} names them. */
    public static final String[] PLATFORMS = {"linux-x86_64", "linux-aarch64", "windows-x86_64", "macos-aarch64",
        "macos-x86_64"};
    /** Cache folders are "v<version>-<content hash>". */
    private static final String VERSION_PREFIX = "v" + jarVersion() + "-";
    private static volatile String loadError;
    private static volatile boolean loaded;
    /** The error of the last failed System.load, and whether the system refused a library we wrote. */
    private static String lastError = "";
    private static boolean refused;
    private static volatile List<MethodSpec> registry;
    private static final java.util.concurrent.atomic.AtomicLong JOBS = new java.util.concurrent.atomic.AtomicLong();

    private NativeBridge() {}

    private static String jarVersion() {
        Package p = NativeBridge.class.getPackage();
        String v = p == null ? null : p.getImplementationVersion();
        return v == null ? "dev" : v.replaceAll("[^A-Za-z0-9._-]", "_");
    }

    private static native String version0();
    private static native String describe0();
    private static native float[] denoise0(String method, float[] pixels, int[] dims, String[] keys,
            String[] values, String[] imageKeys, float[][] imagePixels, int[][] imageDims, String backend,
            String[] info, long job);
    private static native boolean cancel0(long job);
    private static native int[] support0(String method, String[] keys, String[] values);
    private static native String resolve0(String method, float[] pixels, int[] dims, String[] keys, String[] values,
            String[] imageKeys, float[][] imagePixels, int[][] imageDims);
    private static native String tune0(String method, float[] pixels, int[] dims, String[] keys, String[] values,
            String[] imageKeys, float[][] imagePixels, int[][] imageDims, long job);
    private static native double progress0(long job);
    private static native String note0(long job);
    private static native float[] interim0(long job);
    private static native String backends0();
    private static native String residualCheck0(float[] noisy, float[] denoised, int[] dims);
    private static native String rank0(float[] pixels, int[] dims, String methods, long job);
    private static native double estimateNoise0(float[] pixels, int[] dims);
    private static native String estimatePoissonGaussian0(float[] pixels, int[] dims);
    private static native String noiseCorrelation0(float[] pixels, int[] dims);
    private static native String strengthUnitsWarning0(String method, String[] givenKeys, String[] givenValues,
            String[] keys, String[] values);
    private static native int selfTest0(int what);
    private static native boolean gpuCompiled0();

    /** Loads the native library once; throws DenoiseKitException("LibraryNotLoaded") if impossible. */
    public static synchronized void ensureLoaded() {
        if (loaded) return;
        if (loadError != null) throw new DenoiseKitException("LibraryNotLoaded", loadError);
        List<String> tried = new ArrayList<String>();
        String explicit = System.getProperty("denoisekit.library");
        if (explicit != null && tryLoad(explicit, tried)) return;
        String name = System.mapLibraryName(LIB);
        String bundled = "/natives/" + platform() + "/" + name;
        URL res = NativeBridge.class.getResource(bundled);
        if (res != null) {
            try {
                byte[] bytes = readAll(res);
                String folder = VERSION_PREFIX + sha256(bytes).substring(0, 16);
                for (File root : cacheRoots()) {
                    File lib = new File(new File(root, folder), name);
                    try {
                        if (!extractOnce(bytes, lib)) continue;
                        if (tryLoad(lib.getAbsolutePath(), tried)) return;
                        // ImageJ's "Refresh Menus" or "Compile and Run" makes a new plugin
                        // class loader, and a JVM lets one file be loaded by one class
                        // loader only: this one gets a copy of its own.
                        File own = new File(lib.getParentFile(), "cl" + Integer.toHexString(
                                System.identityHashCode(NativeBridge.class.getClassLoader())) + "-" + name);
                        if (lastError.contains("another classloader") && extractOnce(bytes, own)
                                && tryLoad(own.getAbsolutePath(), tried)) return;
                        // The same bytes elsewhere would be refused the same way.
                        refused = true;
                        break;
                    } catch (Exception e) {
                        tried.add(lib + " (" + e + ")");
                    }
                }
            } catch (Exception e) {
                tried.add(bundled + " (" + e + ")");
            }
        } else {
            tried.add("jar:" + bundled + " (not in this jar, which carries " + bundledPlatforms() + ")");
        }
        File jarDir = jarFolder();
        if (jarDir != null && tryLoad(new File(jarDir, name).getAbsolutePath(), tried)) return;
        try {
            System.loadLibrary(LIB);
            loaded = true;
            return;
        } catch (Throwable t) {
            tried.add("java.library.path (" + t.getMessage() + ")");
        }
        loadError = "Cannot load the DenoiseKit native library " + name + " for " + platform() + " (Java "
                + System.getProperty("java.version") + ", " + System.getProperty("os.name") + " "
                + System.getProperty("os.arch") + ").\nTried: " + join(tried) + ".\nWhat to do: " + advice();
        throw new DenoiseKitException("LibraryNotLoaded", loadError);
    }

    /** Platforms whose library is in this jar: "linux-x86_64, windows-x86_64, ...". */
    public static String bundledPlatforms() {
        StringBuilder b = new StringBuilder();
        for (String p : PLATFORMS) {
            if (NativeBridge.class.getResource("/natives/" + p + "/" + libraryFile(p)) != null) {
                b.append(b.length() > 0 ? ", " : "").append(p);
            }
        }
        return b.length() > 0 ? b.toString() : "no native library";
    }

    private static String libraryFile(String platform) {
        return platform.startsWith("windows") ? LIB + ".dll"
                : platform.startsWith("macos") ? "lib" + LIB + ".dylib" : "lib" + LIB + ".so";
    }

    private static String advice() {
        String p = platform();
        boolean known = false;
        for (String q : PLATFORMS) known |= q.equals(p);
        String restart = " Then restart Fiji.";
        if (!known) {
            String arch = System.getProperty("os.arch", "");
            boolean bits32 = arch.equals("x86") || arch.matches("i[3-6]86") || arch.equals("arm");
            return "DenoiseKit is built for " + join(java.util.Arrays.asList(PLATFORMS)) + "; this Java reports " + p
                    + (bits32 ? ", a 32-bit Java: start Fiji with its bundled 64-bit Java." : ", which it does not support yet.");
        }
        if (NativeBridge.class.getResource("/natives/" + p + "/" + libraryFile(p)) == null) {
            return "this DenoiseKit_.jar was packaged without " + p
                    + ": install the release jar, which carries every platform." + restart;
        }
        if (refused) {
            String why = p.startsWith("linux")
                    ? " On Linux it needs glibc 2.17 or newer, and a folder not mounted noexec"
                            + " (start Fiji with -Ddenoisekit.cache=<a folder in your home>)."
                    : p.startsWith("windows")
                            ? " Check that your antivirus did not quarantine or block denoisekit.dll in that folder."
                            : " macOS 11 or newer is needed.";
            return "the library was written but the system refused to load it (" + lastError + ")." + why + restart;
        }
        return "no folder above could be written: start Fiji with -Ddenoisekit.cache=<a writable folder>." + restart;
    }

    /**
     * Where the bundled library is extracted, in order: {@code -Ddenoisekit.cache}, the
     * user's cache folder, the temporary folder. The library's folder is named after its
     * version and content, so each Fiji start reuses one copy (a loaded DLL cannot be
     * deleted on Windows: a copy per start would pile up) and an upgrade never loads a
     * stale one.
     */
    private static List<File> cacheRoots() {
        List<File> roots = new ArrayList<File>();
        String explicit = System.getProperty("denoisekit.cache");
        if (explicit != null && !explicit.isEmpty()) roots.add(new File(explicit));
        String home = System.getProperty("user.home", "");
        String os = System.getProperty("os.name", "").toLowerCase();
        boolean mac = os.contains("mac") || os.contains("darwin");
        if (!mac && os.contains("win")) {
            String local = System.getenv("LOCALAPPDATA");
            if (local != null && !local.isEmpty()) roots.add(new File(local, "DenoiseKit" + File.separator + "natives"));
        } else if (mac) {
            if (!home.isEmpty()) roots.add(new File(home, "Library/Caches/DenoiseKit/natives"));
        } else {
            String xdg = System.getenv("XDG_CACHE_HOME");
            File base = xdg != null && xdg.startsWith("/") ? new File(xdg) : home.isEmpty() ? null : new File(home, ".cache");
            if (base != null) roots.add(new File(base, "denoisekit/natives"));
        }
        String tmp = System.getProperty("java.io.tmpdir");
        String user = System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9._-]", "_");
        if (tmp != null) roots.add(new File(tmp, "denoisekit-" + user));
        if (!mac && os.contains("win")) {
            // Java before 17 loads a DLL through the system code page: a user name it cannot
            // encode (Cyrillic on a Western Windows) fails every folder above.
            String shared = System.getenv("ProgramData");
            if (shared != null && !shared.isEmpty()) roots.add(new File(shared, "DenoiseKit\\natives\\" + user));
        }
        List<File> usable = new ArrayList<File>();
        for (File r : roots) {
            if (r.isAbsolute() && encodable(r.getPath())) usable.add(r);
        }
        return usable;
    }

    /** Whether the JVM's file-name encoding (the code page on Windows) can spell {@code path}. */
    private static boolean encodable(String path) {
        try {
            String enc = System.getProperty("sun.jnu.encoding");
            return enc == null || java.nio.charset.Charset.forName(enc).newEncoder().canEncode(path);
        } catch (Exception e) {
            return true;
        }
    }

    /**
     * On Linux and macOS a folder in the shared temporary folder has a name others can guess:
     * it must be this user's and writable by no one else, or another user could swap the
     * library between our check and the load.
     */
    private static void checkPrivate(File dir) throws java.io.IOException {
        java.nio.file.Path d = dir.toPath();
        if (!java.nio.file.Files.getFileStore(d).supportsFileAttributeView("posix")) return;
        String me = System.getProperty("user.name");
        String owner = java.nio.file.Files.getOwner(d).getName();
        java.util.Set<java.nio.file.attribute.PosixFilePermission> perms = java.nio.file.Files.getPosixFilePermissions(d);
        if (me != null && !me.equals(owner) || perms.contains(java.nio.file.attribute.PosixFilePermission.GROUP_WRITE)
                || perms.contains(java.nio.file.attribute.PosixFilePermission.OTHERS_WRITE)) {
            throw new java.io.IOException(dir + " belongs to " + owner + " or is writable by others: not used");
        }
    }

    /**
     * Makes {@code lib} hold exactly {@code bytes}; true when it does. An existing copy is
     * checked byte for byte (a truncated or altered file is replaced). The new copy is
     * written beside it under a name of its own and renamed into place, so two Fijis
     * starting at once never load a half-written file. No File.createTempFile: it seeds
     * SecureRandom, which crashes some JVMs under Wine and costs time on a fresh start.
     */
    private static boolean extractOnce(byte[] bytes, File lib) throws java.io.IOException {
        File dir = lib.getParentFile();
        File root = dir.getParentFile();
        String tmp = System.getProperty("java.io.tmpdir");
        boolean shared = tmp != null && root != null && new File(tmp).equals(root.getParentFile());
        if (shared) {
            if (!root.isDirectory() && root.mkdir()) {
                root.setReadable(false, false);
                root.setWritable(false, false);
                root.setExecutable(false, false);
                root.setReadable(true, true);
                root.setWritable(true, true);
                root.setExecutable(true, true);
            }
            checkPrivate(root);
        }
        if (sameContent(lib, bytes)) return true;
        if (!dir.isDirectory() && !dir.mkdirs() && !dir.isDirectory()) {
            throw new java.io.IOException("cannot create the folder " + dir);
        }
        File part = new File(dir, lib.getName() + "." + Long.toHexString(System.nanoTime()) + "-"
                + Long.toHexString(Thread.currentThread().getId()) + ".part");
        try {
            OutputStream out = new FileOutputStream(part);
            try {
                out.write(bytes);
            } finally {
                out.close();
            }
        } catch (java.io.IOException e) {
            part.delete();
            throw e;
        }
        try {
            java.nio.file.Files.move(part.toPath(), lib.toPath(), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (java.io.IOException e) {
            // Another process may have put the same file in place (and, on Windows, loaded
            // it, so it cannot be replaced): that copy is as good as ours.
            if (!sameContent(lib, bytes)) throw e;
        } finally {
            part.delete();
        }
        return sameContent(lib, bytes);
    }

    private static boolean sameContent(File f, byte[] bytes) throws java.io.IOException {
        if (!f.isFile() || f.length() != bytes.length) return false;
        InputStream in = new java.io.FileInputStream(f);
        try {
            byte[] buf = new byte[1 << 16];
            int at = 0;
            for (int n; (n = in.read(buf)) > 0; at += n) {
                if (at + n > bytes.length) return false;
                for (int i = 0; i < n; i++) {
                    if (buf[i] != bytes[at + i]) return false;
                }
            }
            return at == bytes.length;
        } finally {
            in.close();
        }
    }

    private static byte[] readAll(URL res) throws java.io.IOException {
        InputStream in = res.openStream();
        try {
            java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream(1 << 24);
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) b.write(buf, 0, n);
            return b.toByteArray();
        } finally {
            in.close();
        }
    }

    private static String sha256(byte[] bytes) throws java.security.NoSuchAlgorithmException {
        byte[] d = java.security.MessageDigest.getInstance("SHA-256").digest(bytes);
        StringBuilder b = new StringBuilder();
        for (byte x : d) b.append(String.format("%02x", x & 0xff));
        return b.toString();
    }

    private static boolean tryLoad(String path, List<String> tried) {
        if (!new File(path).isFile()) {
            tried.add(path + " (no such file)");
            return false;
        }
        try {
            System.load(path);
            loaded = true;
            return true;
        } catch (Throwable t) {
            lastError = String.valueOf(t.getMessage());
            tried.add(path + " (" + t.getMessage() + ")");
            return false;
        }
    }

    private static File jarFolder() {
        try {
            URL u = NativeBridge.class.getProtectionDomain().getCodeSource().getLocation();
            File f = new File(u.toURI());
            return f.isFile() ? f.getParentFile() : f;
        } catch (Exception e) {
            return null;
        }
    }

    /** "linux-x86_64", "macos-aarch64", "windows-x86_64", ... */
    public static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase();
        String arch = System.getProperty("os.arch", "").toLowerCase();
        String o = os.contains("mac") || os.contains("darwin") ? "macos" : os.contains("win") ? "windows" : "linux";
        String a = arch.equals("amd64") || arch.equals("x86_64") || arch.equals("x86-64") ? "x86_64"
                : arch.equals("aarch64") || arch.equals("arm64") ? "aarch64" : arch;
        return o + "-" + a;
    }

    private static String join(List<String> l) {
        StringBuilder b = new StringBuilder();
        for (String s : l) {
            if (b.length() > 0) b.append("; ");
            b.append(s);
        }
        return b.toString();
    }

    /** The native library version. */
    public static String version() {
        ensureLoaded();
        return version0();
    }

    /** The registry as JSON (see {@link MethodSpec#parseRegistry}). */
    public static String describe() {
        ensureLoaded();
        return describe0();
    }

    /** The parsed registry, cached. */
    public static List<MethodSpec> methods() {
        List<MethodSpec> r = registry;
        if (r == null) {
            r = MethodSpec.parseRegistry(describe());
            registry = r;
        }
        return r;
    }

    /** The method with this id, or a DenoiseKitException("UnknownMethod") listing the ids. */
    public static MethodSpec method(String id) {
        StringBuilder ids = new StringBuilder();
        for (MethodSpec m : methods()) {
            if (m.id.equals(id)) return m;
            ids.append(ids.length() > 0 ? ", " : "").append(m.id);
        }
        throw new DenoiseKitException("UnknownMethod", "unknown method `" + id + "`; available methods: " + ids);
    }

    /**
     * Denoises an image or stack.
     *
     * @param pixels {@code width*height*depth} values, plane after plane, row after row
     * @param dims {@code {width, height, depth}}
     * @param keys parameter keys (may be null together with values)
     * @param values parameter values as text, as in a macro
     * @param backend "auto", "cpu", "gpu" or null for auto
     * @param info if non-null and non-empty, receives in [0] a description of the device used
     * @return a new array; the input is never modified
     */
    public static float[] denoise(String method, float[] pixels, int[] dims, String[] keys, String[] values,
            String backend, String[] info) {
        return denoise(method, pixels, dims, keys, values, backend, info, 0L);
    }

    /**
     * As {@link #denoise(String, float[], int[], String[], String[], String, String[])}, as
     * job {@code job} (from {@link #newJob()}), which another thread may {@link #cancel(long)}:
     * the call then throws DenoiseKitException kind "Cancelled" and returns no result.
     */
    public static float[] denoise(String method, float[] pixels, int[] dims, String[] keys, String[] values,
            String backend, String[] info, long job) {
        return denoise(method, pixels, dims, keys, values, null, backend, info, job);
    }

    /**
     * As {@link #denoise(String, float[], int[], String[], String[], String, String[], long)},
     * with the method's other images (its {@link MethodSpec#images}, such as a PSF), or null.
     */
    public static float[] denoise(String method, float[] pixels, int[] dims, String[] keys, String[] values,
            Images images, String backend, String[] info, long job) {
        ensureLoaded();
        Images i = images == null ? Images.NONE : images;
        return denoise0(method, pixels, dims, keys, values, i.keys, i.pixels, i.dims, backend, info, job);
    }

    /**
     * How far {@code {x, y, z}} an output pixel reaches into the input for these (complete)
     * parameters: denoising a region grown by this halo gives exactly the full result there.
     */
    public static int[] support(String method, String[] keys, String[] values) {
        ensureLoaded();
        return support0(method, keys, values);
    }

    /** A fresh job id for {@link #cancel(long)}. */
    public static long newJob() {
        return JOBS.incrementAndGet();
    }

    /**
     * The fraction of running job {@code job} done, in [0, 1], or -1 when no job runs under
     * that id (not started yet, or finished). Safe from any thread.
     */
    public static double progress(long job) {
        ensureLoaded();
        return progress0(job);
    }

    /**
     * What running job {@code job} says about how it is going ("training step 120/800:
     * loss 0.4312 (started at 0.6120)"), or "" when it says nothing or is not running.
     * Safe from any thread.
     */
    public static String note(long job) {
        ensureLoaded();
        return note0(job);
    }

    /**
     * The latest intermediate result of running job {@code job} not yet taken, laid out as
     * the job's result (what a learned method's current weights make of the image while it
     * trains), or null when there is none. The first call asks the job to publish them, so
     * only a job someone watches spends time on them. Safe from any thread.
     */
    public static float[] interim(long job) {
        ensureLoaded();
        return interim0(job);
    }

    /** The backend names the library accepts, the default ("auto") first. */
    public static String[] backends() {
        ensureLoaded();
        return backends0().split(",");
    }

    /** Cancels a running job; returns whether it was running. Safe from any thread. */
    public static boolean cancel(long job) {
        ensureLoaded();
        return cancel0(job);
    }

    /** Every parameter of the method, defaults filled in, as "key=value key=value". */
    public static String resolve(String method, float[] pixels, int[] dims, String[] keys, String[] values) {
        return resolve(method, pixels, dims, keys, values, null);
    }

    /** As {@link #resolve(String, float[], int[], String[], String[])}, with the method's other images. */
    public static String resolve(String method, float[] pixels, int[] dims, String[] keys, String[] values,
            Images images) {
        ensureLoaded();
        Images i = images == null ? Images.NONE : images;
        return resolve0(method, pixels, dims, keys, values, i.keys, i.pixels, i.dims);
    }

    /**
     * Every option of {@code method} after choosing its strength from the image itself
     * (self-supervised: Noise2Self, or SURE for BM3D); the given keys stay as given. May
     * take a second or two for the slowest methods (it runs the method about 13 times per
     * tuned parameter on a 256x256 crop, twice as often for BM3D).
     */
    public static String tune(String method, float[] pixels, int[] dims, String[] keys, String[] values) {
        return tune(method, pixels, dims, keys, values, null);
    }

    /** As {@link #tune(String, float[], int[], String[], String[])}, with the method's other images. */
    public static String tune(String method, float[] pixels, int[] dims, String[] keys, String[] values,
            Images images) {
        return tune(method, pixels, dims, keys, values, images, 0L);
    }

    /** As above, as job {@code job}: cancellable, with its progress readable. */
    public static String tune(String method, float[] pixels, int[] dims, String[] keys, String[] values,
            Images images, long job) {
        ensureLoaded();
        Images i = images == null ? Images.NONE : images;
        return tune0(method, pixels, dims, keys, values, i.keys, i.pixels, i.dims, job);
    }

    /**
     * The denoisers tuned on this image and ranked by one self-supervised loss (the masked
     * loss on the same pixels for all): lines {@code "<id> <loss> <options>"}, the expected
     * best first.
     *
     * @param methods comma-separated method ids, or null or "" for every denoiser whose
     *     strength is tunable whatever its other settings
     */
    public static String[] rank(float[] pixels, int[] dims, String methods) {
        return rank(pixels, dims, methods, 0L);
    }

    /** As above, as job {@code job}: cancellable, with its progress readable. */
    public static String[] rank(float[] pixels, int[] dims, String methods, long job) {
        ensureLoaded();
        return rank0(pixels, dims, methods == null ? "" : methods, job).split("\n");
    }

    /**
     * "Imager beware": a warning when the residual (noisy minus denoised) holds image
     * structure, i.e. the setting removes signal and not only noise; "" when it looks like noise.
     */
    public static String residualCheck(float[] noisy, float[] denoised, int[] dims) {
        ensureLoaded();
        return residualCheck0(noisy, denoised, dims);
    }

    /** Standard deviation of the noise in grey levels (wavelet MAD estimate, corrected for correlated noise). */
    public static double estimateNoise(float[] pixels, int[] dims) {
        ensureLoaded();
        return estimateNoise0(pixels, dims);
    }

    /**
     * Fits the camera's noise, variance = gain * mean + b, from flat regions (clipped ones
     * excluded): "noise_model=poisson_gaussian gain=... offset=... read_noise=...".
     * Throws kind "InvalidInput" when the image has too few flat regions at distinct levels.
     */
    public static String estimatePoissonGaussian(float[] pixels, int[] dims) {
        ensureLoaded();
        return estimatePoissonGaussian0(pixels, dims);
    }

    /**
     * Whether the noise is correlated between neighbouring pixels, in a few words
     * ("independent between pixels", or how far and how strongly); self-supervised tuning
     * accounts for it.
     */
    public static String noiseCorrelation(float[] pixels, int[] dims) {
        ensureLoaded();
        return noiseCorrelation0(pixels, dims);
    }

    /**
     * The warning for strengths given by hand ({@code givenKeys}) that a run with every value
     * {@code keys}/{@code values} (noise_model=auto pinned to what it chose) reads in the
     * variance-stabilised image's units, or "" when none is.
     */
    public static String strengthUnitsWarning(String method, String[] givenKeys, String[] givenValues,
            String[] keys, String[] values) {
        ensureLoaded();
        return strengthUnitsWarning0(method, givenKeys, givenValues, keys, values);
    }

    /** Whether this build has GPU kernels (the macOS builds run on the CPU only). */
    public static boolean gpuCompiled() {
        ensureLoaded();
        try {
            return gpuCompiled0();
        } catch (UnsatisfiedLinkError e) {
            // A library found beside the jar or on java.library.path may be older than it.
            throw new DenoiseKitException("LibraryNotLoaded", "the DenoiseKit native library that was loaded is not the"
                    + " version of this plugin (" + e.getMessage() + "): remove old denoisekit libraries from Fiji's"
                    + " folders and restart Fiji");
        }
    }

    /** Exercises the error bridge: 0 returns 0, 1 and 2 panic natively, 3 fails with "Cancelled". */
    public static int selfTest(int what) {
        ensureLoaded();
        return selfTest0(what);
    }
}
