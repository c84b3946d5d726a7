// Runs Plugins>DenoiseKit>Denoise... from a macro, as a user's recorded macro would.
// Argument: input|output|untouched|options[|channels,slices,frames][|open:other]
//   input      image or stack to open
//   output     where to save the result window
//   untouched  where to save the source image after the command (must equal input)
//   options    the recorded option string
//   c,z,t      optional: make the stack a hyperstack of these dimensions, calibrated
//   open:file  optional: open this image first, for the options to name (a PSF)
args = split(getArgument(), "|");
dims = "";
for (i = 4; i < args.length; i++) {
    if (startsWith(args[i], "open:")) open(substring(args[i], 5));
    else dims = args[i];
}
open(args[0]);
if (dims != "") {
    d = split(dims, ",");
    Stack.setDimensions(parseInt(d[0]), parseInt(d[1]), parseInt(d[2]));
    setVoxelSize(0.25, 0.25, 0.8, "micron");
}
source = getImageID();
getDimensions(w0, h0, c0, z0, t0);
print("source: c=" + c0 + " z=" + z0 + " t=" + t0 + " composite=" + is("composite"));
run("Denoise...", args[3]);
result = getImageID();
if (result == source) exit("Denoise... wrote into the source instead of a new window");
print("result: " + getTitle() + " " + bitDepth() + "-bit " + nSlices + " slices");
getDimensions(w, h, channels, slices, frames);
getVoxelSize(pw, ph, pd, unit);
print("dimensions: c=" + channels + " z=" + slices + " t=" + frames + " voxel=" + pw + "x" + ph + "x" + pd + " " + unit);
print("info: " + getMetadata("Info"));
saveAs("Tiff", args[1]);
selectImage(source);
saveAs("Tiff", args[2]);
