// Runs Plugins>DenoiseKit>Denoise... from a macro, as a user's recorded macro would.
// Argument: input|output|untouched|options
//   input      image or stack to open
//   output     where to save the result window
//   untouched  where to save the source image after the command (must equal input)
//   options    the recorded option string
args = split(getArgument(), "|");
open(args[0]);
source = getImageID();
run("Denoise...", args[3]);
result = getImageID();
if (result == source) exit("Denoise... wrote into the source instead of a new window");
print("result: " + getTitle() + " " + bitDepth() + "-bit " + nSlices + " slices");
print("info: " + getMetadata("Info"));
saveAs("Tiff", args[1]);
selectImage(source);
saveAs("Tiff", args[2]);
