package org.denoisekit.ij;

import ij.IJ;
import ij.ImagePlus;
import ij.Macro;
import ij.WindowManager;
import ij.gui.YesNoCancelDialog;
import ij.plugin.PlugIn;
import ij.plugin.frame.Recorder;
import ij.process.ImageConverter;
import java.awt.GraphicsEnvironment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.denoisekit.DenoiseKitException;
import org.denoisekit.MethodSpec;
import org.denoisekit.NativeBridge;
import org.denoisekit.ParamSpec;

/**
 * Plugins &gt; DenoiseKit &gt; Denoise...: interactively, opens the {@link DenoisePanel} on the
 * image; from a macro ({@code run("Denoise...", "method=nl_means h=0.08 ...")}, as the
 * panel records it), runs the job those options describe, with no window. Both end in the
 * same {@link DenoiseJob}, so a recorded line replays the interactive result exactly.
 * Options a macro leaves out take the values the panel would open at (noise-derived,
 * measured on the channel and frame on screen).
 */
public class DenoiseCommand implements PlugIn {
    /** The job's choices and the values each allows (as {@link DenoiseJob#options} writes them). */
    private static final Map<String, List<String>> CHOICES = new HashMap<String, List<String>>();

    static {
        CHOICES.put(DenoiseJob.SCOPE, DenoiseJob.SCOPES);
        CHOICES.put(DenoiseJob.Z_AXIS, DenoiseJob.Z_AXES);
    }

    /** Plugin options besides the method's parameters, image inputs and checkboxes. */
    private static final Set<String> JOB_KEYS = new HashSet<String>(
            Arrays.asList("method", "backend",
                    // Recorded by versions before the panel (the preview's view); ignored.
                    "view"));

    static {
        JOB_KEYS.addAll(CHOICES.keySet());
    }

    @Override
    public void run(String arg) {
        ImagePlus imp = WindowManager.getCurrentImage();
        if (imp == null) {
            IJ.noImage();
            return;
        }
        String options = Macro.getOptions();
        if (options == null && arg != null && !arg.isEmpty()) options = arg;
        if (options == null) {
            if (GraphicsEnvironment.isHeadless()) {
                IJ.error("DenoiseKit", "Denoise... needs its options when there is no display, e.g. "
                        + "run(\"Denoise...\", \"method=gaussian sigma=2\")");
                return;
            }
            // The panel records its own line when the user applies it; a bare
            // run("Denoise...") for opening it would replay as an open panel.
            Recorder.disableCommandRecording();
            openPanel(imp);
            return;
        }
        try {
            DenoiseJob job = fromOptions(imp, options);
            runLocked(job, null);
        } catch (DenoiseKitException e) {
            if (!"Cancelled".equals(e.getKind())) IJ.error("DenoiseKit", explain(e));
            else IJ.showStatus("DenoiseKit: cancelled");
        } catch (OutOfMemoryError e) {
            IJ.error("DenoiseKit", outOfMemory(imp));
        }
    }

    /** What to do when Java's heap cannot hold the image's copy or the result. */
    static String outOfMemory(ImagePlus imp) {
        return "Java ran out of memory for \"" + imp.getTitle() + "\" (its copy and the result, 32 bits per pixel): "
                + "raise ImageJ's memory (Edit > Options > Memory & Threads), denoise fewer planes (scope=slice), "
                + "or use the denoisekit command line, which streams large stacks";
    }

    /** Opens the panel, after offering a way forward for an RGB image. */
    static void openPanel(ImagePlus imp) {
        if (imp.getBitDepth() == 24) {
            YesNoCancelDialog d = new YesNoCancelDialog(IJ.getInstance(), "DenoiseKit",
                    "\"" + imp.getTitle() + "\" is an RGB image. DenoiseKit denoises grey channels.\n"
                            + "Make a 3-channel copy (red, green, blue) and denoise that?\n"
                            + "(Image > Color > Stack to RGB turns the result back into RGB.)",
                    "Make a copy", "No");
            if (!d.yesPressed()) return;
            ImagePlus copy = imp.duplicate();
            copy.setTitle(DenoiseJob.stripExtension(imp.getTitle()) + "-channels");
            new ImageConverter(copy).convertToRGBStack();
            ImagePlus composite = new ij.CompositeImage(copy, ij.IJ.COMPOSITE);
            composite.show();
            imp = composite;
        }
        DenoisePanel.open(imp, null, null);
    }

    /** Runs a job with the image locked, showing progress on ImageJ's bar and Esc to stop. */
    static DenoiseJob.Outcome runLocked(DenoiseJob job, CancelWatch.Progress progress) {
        final CancelWatch.Progress bar = progress;
        CancelWatch watch = new CancelWatch(Thread.currentThread(), true, new CancelWatch.Progress() {
            @Override
            public void update(double f) {
                IJ.showProgress(f);
                if (bar != null) bar.update(f);
            }

            @Override
            public void note(String text) {
                IJ.showStatus("DenoiseKit: " + text);
                if (bar != null) bar.note(text);
            }
        });
        if (job.inPlace && !job.imp.lock()) {
            watch.close();
            throw new DenoiseKitException("InvalidInput", "\"" + job.imp.getTitle() + "\" is busy (locked by another command)");
        }
        DenoiseJob.Outcome o;
        try {
            o = job.run(watch);
        } finally {
            watch.close();
            if (job.inPlace) job.imp.unlock();
            IJ.showProgress(1.0);
        }
        DenoiseJob.log(o);
        if (!o.warning.isEmpty()) IJ.showStatus("DenoiseKit: this setting removes signal (see the Log)");
        if (!job.inPlace) o.result.show();
        return o;
    }

    /** The job a macro's options describe; an error names the first bad option. */
    static DenoiseJob fromOptions(ImagePlus imp, String options) {
        if (imp.getBitDepth() == 24) {
            throw new DenoiseKitException("InvalidInput", "\"" + imp.getTitle() + "\" is RGB: DenoiseKit denoises grey "
                    + "channels. Convert a copy first: run(\"Duplicate...\", \"title=copy\"); run(\"Make Composite\"); "
                    + "then run(\"Stack to RGB\"); on the result if you need RGB again");
        }
        checkWords(options);
        Map<String, String> given = parse(options);
        String id = given.get("method");
        if (id == null) {
            throw new DenoiseKitException("InvalidInput", "Denoise... needs method=, one of " + idList());
        }
        MethodSpec method = NativeBridge.method(id);
        String backend = given.containsKey("backend") ? given.get("backend") : NativeBridge.backends()[0];
        Set<String> known = new HashSet<String>(JOB_KEYS);
        for (ParamSpec p : method.params) known.add(p.key);
        for (MethodSpec.ImageInput in : method.images) known.add(in.key);
        for (String k : given.keySet()) {
            if (!known.contains(k)) {
                List<String> keys = new ArrayList<String>();
                for (ParamSpec p : method.params) keys.add(p.key);
                for (MethodSpec.ImageInput in : method.images) keys.add(in.key);
                throw new DenoiseKitException("InvalidInput", "unknown option " + k + "= for " + method.id
                        + "; its parameters are " + String.join(", ", keys) + ", and every method takes backend, "
                        + String.join(", ", new java.util.TreeSet<String>(CHOICES.keySet())) + " and the checkboxes "
                        + String.join(", ", DenoiseJob.FLAGS));
            }
        }
        List<String> gk = new ArrayList<String>();
        List<String> gv = new ArrayList<String>();
        for (ParamSpec p : method.params) {
            if (given.containsKey(p.key)) {
                gk.add(p.key);
                gv.add(given.get(p.key));
            }
        }
        String[] titles = new String[method.images.size()];
        for (int i = 0; i < titles.length; i++) {
            String title = given.get(method.images.get(i).key);
            titles[i] = title == null ? DenoiseJob.NONE : title;
        }
        Pixels.Axis axis = axisOf(imp, given.get(DenoiseJob.Z_AXIS));
        ImageInputs inputs = ImageInputs.of(imp, axis, method, gk.toArray(new String[0]), gv.toArray(new String[0]),
                titles, true);
        // Values left out are resolved as the panel opens them: on the channel and frame on
        // screen (noise_model=auto pinned there too), one set for every channel and frame.
        Pixels here = Pixels.measured(imp, imp.getC(), 1, imp.getNSlices(), imp.getT());
        Map<String, String> all = parseOptions(NativeBridge.resolve(method.id, here.data, here.dims,
                gk.toArray(new String[0]), gv.toArray(new String[0]), inputs.at(imp.getC(), axis.other(imp))));
        String[] keys = new String[method.params.size()];
        String[] values = new String[keys.length];
        // The noise model's block (noise_model, gain, offset, ...) ends every denoiser's list.
        int model = -1;
        boolean cameraGiven = false;
        for (int i = 0; i < keys.length; i++) {
            ParamSpec p = method.params.get(i);
            keys[i] = p.key;
            values[i] = given.containsKey(keys[i]) ? p.spelled(given.get(keys[i])) : all.get(keys[i]);
            if (DenoiseJob.NOISE_MODEL.equals(keys[i])) model = i;
            if (model >= 0 && given.containsKey(keys[i])) cameraGiven = true;
        }
        // Nothing of it given, the model is its default, auto, as if named: pinned below
        // to what resolve chose, with the Log saying so (and warning of strengths read in
        // stabilised units). A macro giving a gain or offset keeps them, as before.
        if (model >= 0 && !cameraGiven && method.params.get(model).defaultChoice != null) {
            values[model] = method.params.get(model).defaultChoice;
        }
        String chose = pinAutoNoiseModel(method, keys, values, all);
        if (chose != null) IJ.log(chose);
        if (chose != null || (model >= 0 && !given.containsKey(DenoiseJob.NOISE_MODEL))) {
            // A strength the macro gives is read in stabilised units when auto chose photon
            // noise, or a camera given alone implied it: said as the CLI says it, since the
            // recorded line would name the model.
            List<String> ak = new ArrayList<String>();
            List<String> av = new ArrayList<String>();
            for (int i = 0; i < keys.length; i++) {
                if (values[i] != null) {
                    ak.add(keys[i]);
                    av.add(values[i]);
                }
            }
            String units = NativeBridge.strengthUnitsWarning(method.id, gk.toArray(new String[0]),
                    gv.toArray(new String[0]), ak.toArray(new String[0]), av.toArray(new String[0]));
            if (!units.isEmpty()) IJ.log("DenoiseKit warning: " + units);
        }
        boolean oneSlice = imp.getStackSize() > 1 && DenoiseJob.SLICE.equals(given.get(DenoiseJob.SCOPE));
        DenoiseJob job = new DenoiseJob(imp, method, backend, keys, values, inputs, titles, oneSlice,
                flag(options, DenoiseJob.IN_PLACE), flag(options, DenoiseJob.FLOAT_RESULT),
                flag(options, DenoiseJob.NAN_MASKED));
        String problem = job.check();
        if (problem != null) throw new DenoiseKitException("InvalidInput", problem);
        return job;
    }

    /**
     * The third axis {@code z_axis} names ({@link DenoiseJob#defaultAxis} when null). Frames
     * on an image of one frame and several slices are refused: a line recorded on a
     * time-lapse, replayed on files that opened as plain slices, denoised each slice alone
     * and said nothing. (Slices on a time-lapse of single planes is a choice the panel
     * offers: each frame alone.)
     */
    static Pixels.Axis axisOf(ImagePlus imp, String zAxis) {
        if (zAxis == null) return DenoiseJob.defaultAxis(imp);
        // checkWords refused any other value.
        if (!DenoiseJob.FRAMES.equals(zAxis)) return Pixels.Axis.SLICES;
        if (imp.getNFrames() == 1 && imp.getNSlices() > 1) {
            throw new DenoiseKitException("InvalidInput", DenoiseJob.Z_AXIS + "=" + zAxis + ", but \"" + imp.getTitle()
                    + "\" has 1 frame and " + imp.getNSlices() + " slices: use " + DenoiseJob.Z_AXIS + "="
                    + DenoiseJob.SLICES + ", or make them frames with Image > Hyperstacks > Re-order Hyperstacks");
        }
        return Pixels.Axis.FRAMES;
    }

    /**
     * Replaces noise_model=auto by the model it chose in {@code resolved} (measured on the
     * plane on screen) with its gain, offset and read noise: every channel, frame and
     * preview region then runs with the very same values. Returns the line for the Log
     * that says what it chose, or null if the model was not auto ({@link DenoiseJob#autoModel}).
     */
    static String pinAutoNoiseModel(MethodSpec m, String[] k, String[] v, Map<String, String> resolved) {
        int model = Arrays.asList(k).indexOf(DenoiseJob.NOISE_MODEL);
        if (model < 0 || !DenoiseJob.autoModel(m, v[model])) return null;
        // The noise model's parameters are the shared block that every denoiser's list
        // ends with, from noise_model on (MethodDescriptor::all_params).
        StringBuilder chose = new StringBuilder();
        for (int i = model; i < k.length; i++) {
            String chosen = resolved.get(k[i]);
            if (chosen != null) v[i] = chosen;
            chose.append(' ').append(k[i]).append('=').append(v[i]);
        }
        return "DenoiseKit noise_model=auto chose:" + chose;
    }

    /**
     * The library's message, with the way forward where there is one: a NaN or infinite
     * pixel (a masked-out background) can be treated as masked-out with nan_masked.
     */
    static String explain(DenoiseKitException e) {
        return explain(e, true);
    }

    /** As {@link #explain(DenoiseKitException)}; {@code canMask}: the command has nan_masked. */
    static String explain(DenoiseKitException e, boolean canMask) {
        String m = e.getMessage();
        if (m != null && m.contains("must be finite numbers")) {
            m += canMask
                    ? "; to treat NaN pixels as masked-out (filled from their neighbours for the computation, NaN "
                            + "again in the result) tick " + DenoiseJob.NAN_MASKED + ", or add "
                            + DenoiseJob.NAN_MASKED + " to the macro's options"
                    : "; Compare Methods does not mask NaN pixels: compare on a selection without them, or run "
                            + "Denoise... with " + DenoiseJob.NAN_MASKED;
        }
        return m;
    }

    static String idList() {
        List<String> ids = new ArrayList<String>();
        for (MethodSpec m : NativeBridge.methods()) ids.add(m.id);
        return String.join(", ", ids);
    }

    /**
     * Refuses what {@link #parse} would skip: a word that is not a checkbox (the rest of a
     * path with a space: without brackets, save_weights=/data/w dir/x.json would write
     * /data/w), a checkbox given a value (in_place=true, which a bare word would miss),
     * and a job choice outside its values.
     */
    static void checkWords(String options) {
        Map<String, String> seen = new HashMap<String, String>();
        for (String t : tokens(options)) {
            int eq = t.indexOf('=');
            String key = eq < 0 ? t : t.substring(0, eq);
            if (eq == 0) {
                throw new DenoiseKitException("InvalidInput", "\"" + t + "\" in the options has no key: write key=value");
            }
            // As the command line says it: a repeated key (a line pasted over another) would
            // otherwise run with whichever came last.
            String earlier = seen.put(key, t);
            if (earlier != null) {
                throw new DenoiseKitException("InvalidInput", key + " is given twice (" + earlier + " and " + t
                        + "): give it once");
            }
            if (eq < 0 && !DenoiseJob.FLAGS.contains(t)) {
                throw new DenoiseKitException("InvalidInput", "\"" + t + "\" in the options is neither key=value nor "
                        + "a checkbox (" + String.join(", ", DenoiseJob.FLAGS) + "); a value with spaces goes in brackets: "
                        + "key=[a value with spaces]");
            }
            if (eq >= 0 && DenoiseJob.FLAGS.contains(key)) {
                throw new DenoiseKitException("InvalidInput", key + " is a checkbox: write " + key
                        + " alone to tick it, or leave it out (not " + t + ")");
            }
            List<String> allowed = CHOICES.get(key);
            if (eq >= 0 && allowed != null && !allowed.contains(parse(t).get(key))) {
                throw new DenoiseKitException("InvalidInput", t + ": " + key + " is one of " + String.join(", ", allowed));
            }
        }
    }

    /** Whether a bare keyword (a ticked checkbox) is among the options. */
    static boolean flag(String options, String key) {
        for (String t : tokens(options)) {
            if (t.equals(key)) return true;
        }
        return false;
    }

    /** key=value pairs; a value in [brackets] may hold spaces. */
    static Map<String, String> parse(String options) {
        Map<String, String> m = new HashMap<String, String>();
        for (String t : tokens(options)) {
            int eq = t.indexOf('=');
            if (eq <= 0) continue;
            String v = t.substring(eq + 1);
            if (v.startsWith("[") && v.endsWith("]")) v = v.substring(1, v.length() - 1);
            m.put(t.substring(0, eq), v);
        }
        return m;
    }

    private static List<String> tokens(String options) {
        List<String> out = new ArrayList<String>();
        StringBuilder cur = new StringBuilder();
        boolean bracket = false;
        for (char c : options.trim().toCharArray()) {
            if (c == '[') bracket = true;
            if (c == ']') bracket = false;
            if (Character.isWhitespace(c) && !bracket) {
                if (cur.length() > 0) out.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(c);
            }
        }
        if (cur.length() > 0) out.add(cur.toString());
        return out;
    }

    /** "key=value key=value" as returned by the library (a value with spaces in brackets). */
    static Map<String, String> parseOptions(String options) {
        // The library brackets values with spaces (paths), as macros do.
        return parse(options);
    }

    /** What the chosen backend will run on, as far as is known before a run. */
    static String deviceLine(String backend) {
        if (!NativeBridge.gpuCompiled()) return "CPU only: this build of DenoiseKit has no GPU support";
        if ("cpu".equals(backend)) return "the CPU";
        if ("gpu".equals(backend)) return "the GPU (an error if there is none)";
        return "a hardware GPU where it beats the CPU, else the CPU (the Log says which)";
    }

    /** Enough decimals to show about four significant digits. */
    static int decimals(double v) {
        if (v == 0 || Double.isNaN(v) || Double.isInfinite(v)) return 2;
        int d = 3 - (int) Math.floor(Math.log10(Math.abs(v)));
        return Math.max(0, Math.min(9, d));
    }

    /** A value to about four significant digits, without trailing zeros. */
    static String fmt(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e9) return Long.toString((long) v);
        String s = IJ.d2s(v, decimals(v));
        if (s.contains(".") && !s.contains("E")) s = s.replaceAll("0+$", "").replaceAll("\\.$", "");
        return s;
    }

    /** The preview region's (and Compare's) longest side. */
    static final int MAX_SIDE = 512;

    /**
     * The region the panel previews and Compare Methods compares: the selection's bounds,
     * else the slice, capped to {@link #MAX_SIDE} around its centre.
     */
    static java.awt.Rectangle previewRegion(ImagePlus imp) {
        ij.gui.Roi roi = imp.getRoi();
        java.awt.Rectangle full = new java.awt.Rectangle(0, 0, imp.getWidth(), imp.getHeight());
        java.awt.Rectangle r = roi != null && roi.isArea() ? roi.getBounds().intersection(full) : full;
        // A selection wholly outside the image (moved off it, or kept from a larger one)
        // selects nothing of it: the slice, as without one.
        if (r.isEmpty()) r = full;
        int w = Math.min(r.width, MAX_SIDE), h = Math.min(r.height, MAX_SIDE);
        return new java.awt.Rectangle(r.x + (r.width - w) / 2, r.y + (r.height - h) / 2, w, h);
    }
}
