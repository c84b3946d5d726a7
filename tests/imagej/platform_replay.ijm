// A recorded Denoise... and Compare Methods... on one image, as a macro writer replays
// them on any platform (tests/platforms.rs runs it on Linux and on a Windows JVM).
// Argument: input|denoised_out|montage_out|options|cache
//   cache  if not empty: the folder the native library is extracted to; " Ueber" with a
//          non-ASCII U-umlaut is appended (a user name with spaces and accents)
// The image title gets spaces and accents too. The file stays ASCII: characters above
// 127 are made with fromCharCode, whatever encoding ImageJ reads macros in.
args = split(getArgument(), "|");
if (args.length > 4 && args[4] != "") {
    cache = args[4] + " " + fromCharCode(220) + "ber";
    call("java.lang.System.setProperty", "denoisekit.cache", cache);
    print("cache: " + cache);
}
open(args[0]);
rename("Zelle " + fromCharCode(233) + fromCharCode(252) + " 1.tif");
source = getImageID();
run("Denoise...", args[3]);
if (getImageID() == source) exit("Denoise... wrote into the source instead of a new window");
print("result: " + getTitle() + " " + bitDepth() + "-bit");
// The title's characters as numbers: the console's encoding cannot garble them.
t = getTitle();
codes = "";
for (i = 0; i < lengthOf(t); i++) codes = codes + charCodeAt(t, i) + " ";
print("title codes: " + codes);
saveAs("Tiff", args[1]);
selectImage(source);
run("Compare Methods...", "backend=auto");
print("montage: " + getTitle() + " " + getWidth() + "x" + getHeight());
saveAs("Tiff", args[2]);
