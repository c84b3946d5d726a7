package org.denoisekit.ij;

import ij.CompositeImage;
import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.WindowManager;
import ij.gui.DialogListener;
import ij.gui.GenericDialog;
import ij.gui.Roi;
import ij.plugin.filter.ExtendedPlugInFilter;
import ij.plugin.filter.PlugInFilterRunner;
import ij.process.ByteProcessor;
import ij.process.FloatProcessor;
import ij.process.ImageProcessor;
import ij.process.ShortProcessor;
import java.awt.AWTEvent;
import java.awt.Choice;
import java.awt.Rectangle;
import java.awt.TextField;
import java.awt.event.ActionEvent;
import java.awt.event.ActionListener;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Vector;
import org.denoisekit.DenoiseKitException;
import org.denoisekit.Images;
import org.denoisekit.MethodSpec;
import org.denoisekit.NativeBridge;
import org.denoisekit.ParamSpec;

/**
 * Plugins &gt; DenoiseKit &gt; Denoise...: choose a method, tune its parameters on a live
 * preview, then denoise the slice, stack or hyperstack (each channel and frame as its own
 * z-stack, so 3D methods see the z neighbourhood).
 *
 * <p>Both dialogs are built from the native registry. Labels start with the parameter
 * keys, so ImageJ's recorder writes exactly the keys the CLI accepts, e.g.
 * {@code run("Denoise...", "method=nl_means backend=auto h=0.08 patch_radius=2 search_radius=6")}.
 *
 * <p>The preview covers the selection (or the whole slice) and is computed on that region
 * grown by the method's support halo, in x, y and z, so it equals the final result there
 * to the pixel. A preview whose settings went stale is cancelled in native code. The
 * source image is left unchanged unless {@code in_place} is ticked. No state is static.
 */
public class DenoiseCommand implements ExtendedPlugInFilter, DialogListener {
    private static final int FLAGS = DOES_8G | DOES_16 | DOES_32;
    private static final String[] BACKENDS = {"auto", "cpu", "gpu"};
    private static final String[] SCOPES = {"stack", "slice"};
    private static final String[] VIEWS = {"denoised", "residual", "split"};
    private static final String[] AXES = {"slices", "frames"};

    private ImagePlus imp;
    private MethodSpec method;
    private String backend = "auto";
    private String[] keys = new String[0];
    private String[] values = new String[0];
    /** The image chosen for each of the method's image inputs ("none" if none). */
    private String[] imageTitles = new String[0];
    private Images images;
    /** The images read for the settings being checked; {@link #images} once they pass. */
    private Images pending;
    /** The last image read for an input and its pixels: dialog events re-read nothing. */
    private final Map<String, Object[]> readCache = new HashMap<String, Object[]>();
    private Map<String, String> defaults = new HashMap<String, String>();
    private String scope = "stack";
    private Pixels.Axis axis = Pixels.Axis.SLICES;
    private String view = "denoised";
    private boolean inPlace;
    private boolean floatResult;
    private volatile boolean dialogOpen;
    /** Set when ImageJ made its final dialogItemChanged(gd, null) call: values are read. */
    private volatile boolean finalRead;
    private volatile String finalProblem;
    private final java.util.concurrent.CountDownLatch finalReadDone = new java.util.concurrent.CountDownLatch(1);
    /** The thread that shows the dialog; ImageJ runs the final pass on it, previews elsewhere. */
    private Thread dialogThread;

    @Override
    public int setup(String arg, ImagePlus imp) {
        if (imp == null) {
            IJ.noImage();
            return DONE;
        }
        this.imp = imp;
        return FLAGS;
    }

    @Override
    public int showDialog(ImagePlus imp, String command, PlugInFilterRunner pfr) {
        try {
            List<MethodSpec> methods = NativeBridge.methods();
            String[] ids = new String[methods.size()];
            for (int i = 0; i < ids.length; i++) ids[i] = methods.get(i).id;
            final GenericDialog gd1 = new GenericDialog("Denoise");
            gd1.addChoice("method", ids, ids[0]);
            gd1.addChoice("backend", BACKENDS, "auto");
            gd1.addButton("Suggest a method", new ActionListener() {
                @Override
                public void actionPerformed(ActionEvent e) {
                    suggest(gd1);
                }
            });
            gd1.addMessage("Suggest tunes every denoiser on the slice on screen and selects the one\n"
                    + "expected best by the self-supervised loss (seconds to a minute).");
            gd1.addHelp(registryHelp(methods));
            gd1.showDialog();
            if (gd1.wasCanceled()) return DONE;
            method = NativeBridge.method(gd1.getNextChoice());
            backend = gd1.getNextChoice();

            // Defaults and the noise readout come from the channel and frame on screen: the
            // data the preview shows, and one copy instead of the whole hyperstack.
            Pixels here = Pixels.of(imp, imp.getC(), imp.getT());
            defaults = parseOptions(NativeBridge.resolve(method.id, here.data, here.dims, null, null));
            double noise = NativeBridge.estimateNoise(here.data, here.dims);
            String correlation;
            try {
                correlation = NativeBridge.noiseCorrelation(here.data, here.dims);
            } catch (DenoiseKitException e) {
                correlation = "correlation not measured: " + e.getMessage().replaceFirst("^invalid input: ", "");
            }

            // The dialog opens at the self-supervised strength when that search is quick
            // here, else at the noise-derived defaults; its message says which.
            String strength = openingStrength(here);

            final GenericDialog gd = new GenericDialog("Denoise: " + method.name);
            gd.addMessage(wrap(method.summary, 72));
            for (ParamSpec p : method.params) addField(gd, p, defaults.get(p.key));
            // Image inputs (a PSF) come after every parameter, so the parameters' choice
            // fields keep their positions for the Auto buttons.
            for (MethodSpec.ImageInput in : method.images) gd.addChoice(in.key, imageChoices(imp), NONE);
            final Pixels tuneOn = here;
            gd.addButton("Auto", new ActionListener() {
                @Override
                public void actionPerformed(ActionEvent e) {
                    auto(gd, tuneOn);
                }
            });
            if (imp.getStackSize() > 1) gd.addChoice("scope", SCOPES, "stack");
            if (imp.getNFrames() > 1) {
                // A time-lapse of single planes is denoised across time by default.
                gd.addChoice("z_axis", AXES, imp.getNSlices() > 1 ? "slices" : "frames");
            }
            gd.addCheckbox("in_place (modify the original image)", false);
            gd.addCheckbox("float_result (32-bit output)", false);
            gd.addChoice("view", VIEWS, "denoised");
            gd.addMessage(wrap("Estimated noise sigma: " + IJ.d2s(noise, 4, 4) + " grey levels, " + correlation
                    + ".", 80) + "\nPreview: "
                    + (imp.getRoi() != null && imp.getRoi().isArea() ? "the selection" : "the current slice")
                    + "\nDevice: " + deviceLine(backend) + "\nStrength: " + strength);
            if ("denoise".equals(method.kind)) {
                // The residual check of each preview, where the user looks (not only the Log).
                gd.addMessage(RESIDUAL_IDLE);
                residualLabel = gd.getMessage();
            }
            gd.addHelp(methodHelp(method));
            gd.addPreviewCheckbox(pfr);
            gd.addDialogListener(this);
            dialogThread = Thread.currentThread();
            dialogOpen = true;
            gd.showDialog();
            dialogOpen = false;
            if (gd.wasCanceled()) return DONE;
            // After OK, ImageJ calls the listener once more with a null event and records
            // what it reads; in the interactive case that call runs on the event thread and
            // may come after this thread wakes up. Reading here as well would record every
            // option twice, so wait for that call (bounded, for ImageJ versions without it).
            try {
                finalReadDone.await(5, java.util.concurrent.TimeUnit.SECONDS);
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
            }
            String problem = finalRead ? finalProblem : readDialog(gd);
            if (problem != null) {
                IJ.error("DenoiseKit", problem);
                return DONE;
            }
        } catch (DenoiseKitException e) {
            dialogOpen = false;
            IJ.error("DenoiseKit", e.getMessage());
            return DONE;
        }
        // Results go to a new window unless asked otherwise: the source stays untouched.
        if (!inPlace) return FLAGS | NO_CHANGES | NO_UNDO;
        // ImageJ's Undo holds one slice: offering it after a whole-stack change would
        // restore a single slice and leave the rest denoised.
        return imp.getStackSize() > 1 && "stack".equals(scope) ? FLAGS | NO_UNDO : FLAGS;
    }

    /** noise_model=auto's choice on the plane on screen, made once per dialog. */
    private Map<String, String> autoNoise;

    /**
     * Replaces noise_model=auto by the model chosen on the channel and frame on screen, with
     * its gain, offset and read noise: a preview of a region would otherwise fit the region
     * and differ from the result. The Log and the result's Info show the values used.
     */
    private void pinAutoNoiseModel(String[] k, String[] v) {
        int model = java.util.Arrays.asList(k).indexOf("noise_model");
        if (model < 0 || !"auto".equals(v[model])) return;
        if (autoNoise == null) {
            Pixels here = Pixels.of(imp, imp.getC(), imp.getT());
            autoNoise = parseOptions(NativeBridge.resolve(method.id, here.data, here.dims,
                    new String[] {"noise_model"}, new String[] {"auto"}));
            StringBuilder chose = new StringBuilder();
            for (int i = model; i < k.length; i++) chose.append(' ').append(k[i]).append('=').append(autoNoise.get(k[i]));
            IJ.log("DenoiseKit noise_model=auto chose:" + chose);
        }
        // The noise model's parameters are the shared block that every denoiser's list
        // ends with, from noise_model on (MethodDescriptor::all_params).
        for (int i = model; i < k.length; i++) {
            String chosen = autoNoise.get(k[i]);
            if (chosen != null) v[i] = chosen;
        }
    }

    /** What the chosen backend will run on, as far as is known before a run. */
    static String deviceLine(String backend) {
        if (!NativeBridge.gpuCompiled()) return "CPU only: this build of DenoiseKit has no GPU support";
        if ("cpu".equals(backend)) return "the CPU";
        if ("gpu".equals(backend)) return "the GPU (an error if there is none)";
        return "a hardware GPU where it beats the CPU, else the CPU (the Log says which)";
    }

    private static final String NONE = "none";

    /** "none", then the titles of the open images other than {@code imp}. */
    private static String[] imageChoices(ImagePlus imp) {
        List<String> t = new ArrayList<String>();
        t.add(NONE);
        int[] ids = WindowManager.getIDList();
        if (ids != null) {
            for (int id : ids) {
                ImagePlus other = WindowManager.getImage(id);
                if (other != null && other != imp) t.add(other.getTitle());
            }
        }
        return t.toArray(new String[0]);
    }

    /**
     * The images the settings need, read from the chosen windows (the first channel and
     * frame of each, as a z-stack); a message naming what is missing, or null.
     */
    private String readImages(String[] k, String[] v, String[] titles) {
        Images.Builder b = new Images.Builder();
        for (int i = 0; i < method.images.size(); i++) {
            MethodSpec.ImageInput in = method.images.get(i);
            boolean needed = false;
            for (int j = 0; j < k.length; j++) needed |= k[j].equals(in.whenKey) && v[j].equals(in.whenValue);
            if (!needed) continue;
            ImagePlus src = NONE.equals(titles[i]) ? null : WindowManager.getImage(titles[i]);
            if (src == null) {
                return in.whenKey + "=" + in.whenValue + " needs " + in.key
                        + ": open the image (" + in.label + ") and choose it";
            }
            Object[] cached = readCache.get(in.key);
            Pixels px;
            if (cached != null && cached[0] == src && cached[1] == src.getStack()) {
                px = (Pixels) cached[2];
            } else {
                px = Pixels.of(src, 1, 1);
                readCache.put(in.key, new Object[] {src, src.getStack(), px});
            }
            b.put(in.key, px.data, px.dims);
        }
        pending = b.build();
        return null;
    }

    private static void addField(GenericDialog gd, ParamSpec p, String def) {
        String unit = p.unitSuffix();
        String label = p.key + (unit.isEmpty() ? "" : " (" + unit + ")");
        if (p.isChoice()) {
            gd.addChoice(p.key, p.options, def != null ? def : p.defaultChoice);
            return;
        }
        double v = def != null ? Double.parseDouble(def) : p.defaultNumber;
        if (isSlider(p)) {
            gd.addSlider(label, p.min, p.max, v, p.isInt() ? 1.0 : 0.01);
        } else {
            gd.addNumericField(p.key, v, p.isInt() ? 0 : decimals(v), 10, unit);
        }
    }

    private static final String RESIDUAL_IDLE = "Residual check: shown with the preview";

    /** The dialog's residual-check line, updated by each preview (denoisers only). */
    private java.awt.Component residualLabel;

    /** The longest self-supervised search the dialog runs on opening, in ms. */
    private static final double OPENING_TUNE_MS = 2000;

    /** Method runs a search takes: golden sections on one parameter (SURE: two per trial). */
    private static final int SEARCH_RUNS = 13;

    /**
     * Puts the self-supervised strength into {@link #defaults} when the search is quick on
     * the plane {@code here} (one run at the defaults, timed, times the runs of a search,
     * at most {@link #OPENING_TUNE_MS}); says which strength the dialog opens at. A macro
     * gives every value, so nothing is searched then.
     */
    private String openingStrength(Pixels here) {
        boolean tunable = false;
        for (ParamSpec p : method.params) tunable |= p.tunable;
        if (!tunable || !"denoise".equals(method.kind)) return "the method's defaults";
        if (ij.Macro.getOptions() != null) return "as given";
        String[] k = defaults.keySet().toArray(new String[0]);
        String[] v = new String[k.length];
        for (int i = 0; i < k.length; i++) v[i] = defaults.get(k[i]);
        try {
            long t0 = System.nanoTime();
            NativeBridge.denoise(method.id, here.data, here.dims, k, v, "cpu", new String[1]);
            // Tuning runs on at most 2^18 voxels of the plane (tune.rs's budget).
            double share = Math.min(1.0, (double) (1 << 18) / here.data.length);
            double estimate = (System.nanoTime() - t0) / 1e6 * share * 2 * SEARCH_RUNS;
            if (estimate > OPENING_TUNE_MS) {
                return "from the noise estimate; Auto searches it from the image (about "
                        + IJ.d2s(estimate / 1000, 0) + " s)";
            }
            List<String> keys = new ArrayList<String>();
            List<String> values = new ArrayList<String>();
            for (ParamSpec p : method.params) {
                if (p.tunable) continue;
                keys.add(p.key);
                values.add(defaults.get(p.key));
            }
            Map<String, String> tuned = parseOptions(NativeBridge.tune(method.id, here.data, here.dims,
                    keys.toArray(new String[0]), values.toArray(new String[0])));
            StringBuilder chose = new StringBuilder();
            for (ParamSpec p : method.params) {
                if (p.tunable && tuned.containsKey(p.key)) {
                    defaults.put(p.key, tuned.get(p.key));
                    double x = Double.parseDouble(tuned.get(p.key));
                    chose.append(' ').append(p.key).append('=').append(IJ.d2s(x, p.isInt() ? 0 : decimals(x)));
                }
            }
            IJ.log("DenoiseKit: self-supervised " + method.id + chose);
            return "self-supervised from the slice on screen (" + chose.toString().trim() + "); Auto repeats it";
        } catch (DenoiseKitException e) {
            return "from the noise estimate (the self-supervised search failed: " + e.getMessage() + ")";
        }
    }

    /**
     * The Auto button. Under the Poisson-Gaussian model the camera's gain, offset and read
     * noise are fitted first; then the method's strength is searched self-supervised
     * (Noise2Self, or SURE for BM3D) with every other field kept, or, for a method with
     * nothing to search, every field goes back to the defaults derived from the noise.
     */
    private void auto(GenericDialog gd, Pixels on) {
        boolean tunable = false;
        for (ParamSpec p : method.params) tunable |= p.tunable;
        if (!tunable) {
            resetToDefaults(gd, on);
            IJ.showStatus("DenoiseKit Auto: the defaults from the noise estimate");
            return;
        }
        if (!fitCamera(gd, on)) return;
        tuneFields(gd, on);
    }

    /** Puts the residual check of the latest preview into the dialog. */
    private void showResidualCheck(String warning) {
        final String text = warning.isEmpty()
                ? "Residual check: no structure in what this setting removes"
                : wrap("Residual check: " + warning, 72);
        final java.awt.Component label = residualLabel;
        java.awt.EventQueue.invokeLater(new Runnable() {
            @Override
            public void run() {
                if (label instanceof ij.gui.MultiLineLabel) ((ij.gui.MultiLineLabel) label).setText(text);
                else if (label instanceof java.awt.Label) ((java.awt.Label) label).setText(text);
                label.setForeground(text.startsWith("Residual check: no structure") ? java.awt.Color.black
                        : new java.awt.Color(0xb0, 0x30, 0x00));
                java.awt.Container top = label.getParent();
                if (top != null) top.validate();
            }
        });
    }

    /**
     * The first dialog's Suggest button: every denoiser tuned on the plane on screen and
     * ranked by one self-supervised loss ({@link NativeBridge#rank}); the expected best is
     * selected, and the ranking logged with each one's loss.
     */
    private void suggest(GenericDialog gd1) {
        Pixels here = Pixels.of(imp, imp.getC(), imp.getT());
        IJ.showStatus("DenoiseKit: tuning every denoiser to suggest one...");
        String[] ranked;
        try {
            ranked = NativeBridge.rank(here.data, here.dims, null);
        } catch (DenoiseKitException ex) {
            IJ.error("DenoiseKit", "Suggest: " + ex.getMessage());
            return;
        }
        IJ.log("DenoiseKit: denoisers ranked by the self-supervised loss on " + imp.getTitle()
                + " (lower is better):");
        for (int i = 0; i < ranked.length; i++) {
            String[] idLoss = ranked[i].split(" ", 3);
            if (idLoss.length < 2) continue;
            double loss = Double.parseDouble(idLoss[1]);
            IJ.log(String.format("  %s %-22s loss %s", i == 0 ? "*" : " ", idLoss[0], IJ.d2s(loss, decimals(loss))));
        }
        String best = ranked[0].split(" ", 2)[0];
        ((Choice) gd1.getChoices().get(0)).select(best);
        IJ.showStatus("DenoiseKit: suggested " + best + " (the ranking is in the Log)");
    }

    /** Bounded linear parameters get sliders; log-scaled or open ones a number field. */
    private static boolean isSlider(ParamSpec p) {
        boolean bounded = !Double.isNaN(p.min) && !Double.isNaN(p.max);
        return bounded && (p.isInt() || "linear".equals(p.scale));
    }

    /**
     * The self-supervised Auto button: the method's strength chosen from the image itself
     * (Noise2Self, or SURE for BM3D), every other field kept as it stands; only the tuned
     * fields change.
     */
    private void tuneFields(GenericDialog gd, Pixels on) {
        Vector<?> numbers = gd.getNumericFields();
        Vector<?> choices = gd.getChoices();
        List<String> keys = new ArrayList<String>();
        List<String> values = new ArrayList<String>();
        int n = 0, c = 0;
        for (ParamSpec p : method.params) {
            String v = p.isChoice() ? ((Choice) choices.get(c++)).getSelectedItem()
                    : ((TextField) numbers.get(n++)).getText().trim();
            if (!p.tunable) {
                keys.add(p.key);
                values.add(v);
            }
        }
        IJ.showStatus("DenoiseKit: tuning " + method.id + "...");
        Map<String, String> tuned;
        try {
            tuned = parseOptions(NativeBridge.tune(method.id, on.data, on.dims,
                    keys.toArray(new String[0]), values.toArray(new String[0]), images));
        } catch (DenoiseKitException ex) {
            IJ.error("DenoiseKit", ex.getMessage());
            return;
        }
        n = 0;
        StringBuilder log = new StringBuilder();
        for (ParamSpec p : method.params) {
            if (p.isChoice()) continue;
            TextField f = (TextField) numbers.get(n++);
            if (p.tunable && tuned.containsKey(p.key)) {
                double x = Double.parseDouble(tuned.get(p.key));
                f.setText(IJ.d2s(x, p.isInt() ? 0 : isSlider(p) ? 2 : decimals(x)));
                log.append(' ').append(p.key).append('=').append(tuned.get(p.key));
            }
        }
        IJ.showStatus("DenoiseKit: self-supervised" + log);
        IJ.log("DenoiseKit: self-supervised " + method.id + log);
    }

    /**
     * The Auto button: every field back to the defaults derived from the noise estimate.
     * With the Poisson-Gaussian model selected, the camera's gain, offset and read noise
     * are fitted to the image first, and the noise-derived defaults measured under them.
     */
    private void resetToDefaults(GenericDialog gd, Pixels on) {
        Map<String, String> values = cameraValues(gd, on);
        if (values == null) return;
        setFields(gd, values);
    }

    /**
     * The defaults measured under the camera fitted to {@code on} when the Poisson-Gaussian
     * model is selected, else {@link #defaults}; null (after telling the user) if the fit
     * failed.
     */
    private Map<String, String> cameraValues(GenericDialog gd, Pixels on) {
        Vector<?> choices = gd.getChoices();
        int c = 0;
        for (ParamSpec p : method.params) {
            if (!p.isChoice()) continue;
            Choice field = (Choice) choices.get(c++);
            if (!"noise_model".equals(p.key) || !"poisson_gaussian".equals(field.getSelectedItem())) continue;
            try {
                String fit = NativeBridge.estimatePoissonGaussian(on.data, on.dims);
                Map<String, String> camera = parseOptions(fit);
                String[] keys = camera.keySet().toArray(new String[0]);
                String[] vals = new String[keys.length];
                for (int i = 0; i < keys.length; i++) vals[i] = camera.get(keys[i]);
                IJ.log("DenoiseKit: camera noise fitted: " + fit);
                return parseOptions(NativeBridge.resolve(method.id, on.data, on.dims, keys, vals));
            } catch (DenoiseKitException ex) {
                IJ.error("DenoiseKit", "Poisson-Gaussian fit: " + ex.getMessage());
                return null;
            }
        }
        return defaults;
    }

    /** Under the Poisson-Gaussian model, the camera fields from a fit; false if it failed. */
    private boolean fitCamera(GenericDialog gd, Pixels on) {
        Map<String, String> values = cameraValues(gd, on);
        if (values == null) return false;
        if (values == defaults) return true;
        Map<String, String> camera = new java.util.HashMap<String, String>();
        for (String key : new String[] {"gain", "offset", "read_noise"}) {
            if (values.containsKey(key)) camera.put(key, values.get(key));
        }
        setFields(gd, camera);
        return true;
    }

    /** Sets the fields named in {@code values}; the others keep what they show. */
    private void setFields(GenericDialog gd, Map<String, String> values) {
        Vector<?> numbers = gd.getNumericFields();
        Vector<?> choices = gd.getChoices();
        int n = 0;
        int c = 0;
        for (ParamSpec p : method.params) {
            String v = values.get(p.key);
            if (v == null) {
                if (p.isChoice()) c++;
                else n++;
                continue;
            }
            if (p.isChoice()) {
                ((Choice) choices.get(c++)).select(v);
            } else {
                double x = Double.parseDouble(v);
                ((TextField) numbers.get(n++)).setText(IJ.d2s(x, p.isInt() ? 0 : isSlider(p) ? 2 : decimals(x)));
            }
        }
    }

    /** Enough decimals to show about four significant digits. */
    static int decimals(double v) {
        if (v == 0 || Double.isNaN(v) || Double.isInfinite(v)) return 2;
        int d = 3 - (int) Math.floor(Math.log10(Math.abs(v)));
        return Math.max(1, Math.min(9, d));
    }

    /** Breaks text into lines of at most {@code width} characters (AWT labels do not wrap). */
    static String wrap(String text, int width) {
        StringBuilder out = new StringBuilder();
        int lineStart = 0;
        for (String word : text.split(" ")) {
            if (out.length() - lineStart + word.length() > width && out.length() > lineStart) {
                out.append('\n');
                lineStart = out.length();
            } else if (out.length() > lineStart) {
                out.append(' ');
            }
            out.append(word);
        }
        return out.toString();
    }

    /** Reads the fields in order; returns a message naming a bad value, or null. */
    private String readDialog(GenericDialog gd) {
        String[] k = new String[method.params.size()];
        String[] v = new String[k.length];
        for (int i = 0; i < k.length; i++) {
            ParamSpec p = method.params.get(i);
            k[i] = p.key;
            if (p.isChoice()) {
                v[i] = gd.getNextChoice();
                continue;
            }
            double x = gd.getNextNumber();
            if (gd.invalidNumber() || !p.inRange(x)) {
                return p.key + " = " + (gd.invalidNumber() ? "(not a number)" : ParamSpec.fmt(x))
                        + " is outside " + p.rangeText();
            }
            v[i] = p.isInt() ? Long.toString(Math.round(x)) : Double.toString(x);
        }
        pinAutoNoiseModel(k, v);
        String[] titles = new String[method.images.size()];
        for (int i = 0; i < titles.length; i++) titles[i] = gd.getNextChoice();
        String missing = readImages(k, v, titles);
        if (missing != null) return missing;
        imageTitles = titles;
        scope = imp.getStackSize() > 1 ? gd.getNextChoice() : "slice";
        axis = imp.getNFrames() > 1 && "frames".equals(gd.getNextChoice()) ? Pixels.Axis.FRAMES : Pixels.Axis.SLICES;
        inPlace = gd.getNextBoolean();
        floatResult = gd.getNextBoolean();
        view = gd.getNextChoice();
        if (inPlace && floatResult) {
            return "in_place keeps the image's bit depth: untick float_result, or in_place for a 32-bit copy";
        }
        if (inPlace && imp.getStack().isVirtual()) {
            return "in_place is not possible on a virtual stack (its slices are read from disk); untick it";
        }
        keys = k;
        values = v;
        images = pending;
        return null;
    }

    @Override
    public boolean dialogItemChanged(GenericDialog gd, AWTEvent e) {
        // ImageJ 1.53 makes the final null-event call twice (from dispose() and from
        // showDialog()), with the recorder on both times: read, and record, only once.
        // (The preview also calls with a null event while the dialog is open.)
        boolean closing = e == null && gd.wasOKed();
        if (closing && finalRead) return finalProblem == null;
        String problem = readDialog(gd);
        if (closing) {
            finalProblem = problem;
            finalRead = true;
            finalReadDone.countDown();
        }
        if (problem != null) IJ.showStatus("DenoiseKit: " + problem);
        return problem == null;
    }

    @Override
    public void setNPasses(int nPasses) {}

    @Override
    public void run(ImageProcessor ip) {
        try {
            if (dialogOpen && Thread.currentThread() != dialogThread) {
                preview(ip);
            } else if (Thread.currentThread() == dialogThread || dialogThread == null) {
                apply();
            }
        } catch (DenoiseKitException e) {
            if ("Cancelled".equals(e.getKind())) {
                IJ.showStatus("DenoiseKit: cancelled");
            } else if (dialogOpen) {
                IJ.showStatus("DenoiseKit: " + e.getMessage());
            } else {
                IJ.error("DenoiseKit", e.getMessage());
            }
        }
    }

    /** The region the preview covers: the selection's bounds, else the whole slice. */
    static Rectangle previewRegion(ImagePlus imp) {
        Roi roi = imp.getRoi();
        Rectangle full = new Rectangle(0, 0, imp.getWidth(), imp.getHeight());
        return roi != null && roi.isArea() ? roi.getBounds().intersection(full) : full;
    }

    /**
     * Denoises {@code region} of the current plane exactly as the final run would: on the
     * region grown by the method's support in x, y and z. Returns a region-sized plane.
     */
    static float[] denoiseRegion(ImagePlus imp, MethodSpec method, String[] keys, String[] values, String backend,
            Rectangle region, long job) {
        return denoiseRegion(imp, Pixels.Axis.SLICES, method, keys, values, null, backend, region, job);
    }

    /**
     * As above, with {@code axis} (slices or frames) as the method's third dimension and the
     * method's other images (or null).
     */
    static float[] denoiseRegion(ImagePlus imp, Pixels.Axis axis, MethodSpec method, String[] keys, String[] values,
            Images images, String backend, Rectangle region, long job) {
        int[] halo = NativeBridge.support(method.id, keys, values);
        Rectangle grown = new Rectangle(region.x - halo[0], region.y - halo[1], region.width + 2 * halo[0],
                region.height + 2 * halo[1]).intersection(new Rectangle(0, 0, imp.getWidth(), imp.getHeight()));
        int z = axis.current(imp), nz = axis.length(imp);
        int z0 = Math.max(1, z - halo[2]), z1 = Math.min(nz, z + halo[2]);
        Pixels in = Pixels.of(imp, axis.indices(imp, imp.getC(), axis.other(imp), z0, z1), grown);
        float[] out = NativeBridge.denoise(method.id, in.data, in.dims, keys, values, images, backend, null, job);
        float[] plane = new float[region.width * region.height];
        int off = (z - z0) * grown.width * grown.height;
        for (int y = 0; y < region.height; y++) {
            System.arraycopy(out, off + (region.y - grown.y + y) * grown.width + (region.x - grown.x), plane,
                    y * region.width, region.width);
        }
        return plane;
    }

    private void preview(ImageProcessor ip) {
        Rectangle r = previewRegion(imp);
        float[] plane;
        CancelWatch watch = new CancelWatch(Thread.currentThread(), false);
        try {
            plane = denoiseRegion(imp, axis, method, keys, values, images, backend, r, watch.job);
        } finally {
            watch.close();
        }
        Pixels in = Pixels.of(ip, r);
        if (residualLabel != null) {
            try {
                showResidualCheck(NativeBridge.residualCheck(in.data, plane, in.dims));
            } catch (DenoiseKitException e) {
                showResidualCheck("not measured on this region (" + e.getMessage() + ")");
            }
        }
        if ("residual".equals(view)) {
            // What was removed, centred on the middle of the display range so that integer
            // images can show negative values.
            float mid = (float) ((ip.getMin() + ip.getMax()) / 2);
            for (int i = 0; i < plane.length; i++) plane[i] = in.data[i] - plane[i] + (ip instanceof FloatProcessor ? 0 : mid);
        }
        Rectangle from = new Rectangle(0, 0, r.width, r.height);
        if ("split".equals(view)) {
            int half = r.width / 2;
            from = new Rectangle(half, 0, r.width - half, r.height);
            Pixels.write(ip, plane, 0, r.width, from, new Rectangle(r.x + half, r.y, from.width, from.height));
        } else {
            Pixels.write(ip, plane, 0, r.width, from, r);
        }
    }

    private void apply() {
        ImageStack stack = imp.getStack();
        int w = imp.getWidth(), h = imp.getHeight();
        int nc = imp.getNChannels(), nz = imp.getNSlices(), nt = imp.getNFrames();
        boolean oneSlice = "slice".equals(scope);
        // Each (channel, position along the other axis) is one volume along `axis`.
        int[] cs = oneSlice ? new int[] {imp.getC()} : range(nc);
        int[] others = oneSlice ? new int[] {axis.other(imp)} : range(axis.otherLength(imp));
        int len = axis.length(imp);
        String[] info = new String[1];
        long t0 = System.nanoTime();
        int done = 0;
        ImageProcessor[] outs = new ImageProcessor[stack.getSize()];
        Rectangle full = new Rectangle(0, 0, w, h);
        String warning = "";
        // In place, nothing is written until every group succeeded: a failure or a cancel
        // in the third channel must not leave the first two denoised.
        java.util.List<int[]> doneIndices = new java.util.ArrayList<int[]>();
        java.util.List<float[]> doneOut = new java.util.ArrayList<float[]>();
        CancelWatch watch = new CancelWatch(Thread.currentThread(), true);
        try {
            for (int o : others) {
                for (int c : cs) {
                    int a0 = oneSlice ? axis.current(imp) : 1, a1 = oneSlice ? axis.current(imp) : len;
                    int[] indices = axis.indices(imp, c, o, a0, a1);
                    float[] out;
                    Pixels v = Pixels.of(imp, indices, full);
                    if (oneSlice) {
                        out = denoiseRegion(imp, axis, method, keys, values, images, backend, full, watch.job);
                        info[0] = "the current plane";
                    } else {
                        out = NativeBridge.denoise(method.id, v.data, v.dims, keys, values, images, backend, info,
                                watch.job);
                    }
                    if (warning.isEmpty() && "denoise".equals(method.kind)) {
                        warning = NativeBridge.residualCheck(v.data, out, v.dims);
                    }
                    if (inPlace) {
                        doneIndices.add(indices);
                        doneOut.add(out);
                    } else {
                        for (int i = 0; i < indices.length; i++) {
                            outs[indices[i] - 1] = toProcessor(out, i * w * h, w, h, stack.getProcessor(indices[i]));
                        }
                    }
                    IJ.showProgress(++done, cs.length * others.length);
                }
            }
        } finally {
            watch.close();
        }
        for (int g = 0; g < doneIndices.size(); g++) {
            int[] indices = doneIndices.get(g);
            for (int i = 0; i < indices.length; i++) {
                Pixels.write(stack.getProcessor(indices[i]), doneOut.get(g), i * w * h, w, full, full);
            }
        }
        String note = "DenoiseKit " + NativeBridge.version() + ": " + optionString() + " on " + info[0];
        IJ.log(String.format("%s (%.0f ms)", note, (System.nanoTime() - t0) / 1e6));
        if (!warning.isEmpty()) {
            IJ.log("DenoiseKit warning: " + warning);
            IJ.showStatus("DenoiseKit: this setting removes signal (see the Log)");
        }
        if (inPlace) {
            appendInfo(imp, note);
            imp.updateAndDraw();
            return;
        }
        ImagePlus out = oneSlice ? singleSlice(outs) : wholeStack(outs, stack, nc, nz, nt);
        out.setCalibration(imp.getCalibration().copy());
        String srcInfo = (String) imp.getProperty("Info");
        if (srcInfo != null) out.setProperty("Info", srcInfo);
        appendInfo(out, note);
        if (imp.getOverlay() != null) out.setOverlay(imp.getOverlay().duplicate());
        if (!oneSlice && imp.isComposite() && nc > 1) {
            CompositeImage ci = new CompositeImage(out, ((CompositeImage) imp).getMode());
            ci.setLuts(((CompositeImage) imp).getLuts());
            out = ci;
        } else {
            out.getProcessor().setColorModel(imp.getProcessor().getColorModel());
            out.resetDisplayRange();
        }
        out.show();
    }

    private ImagePlus singleSlice(ImageProcessor[] outs) {
        int index = imp.getCurrentSlice();
        return new ImagePlus(stripExtension(imp.getTitle()) + "-" + method.id, outs[index - 1]);
    }

    private ImagePlus wholeStack(ImageProcessor[] outs, ImageStack stack, int nc, int nz, int nt) {
        ImageStack result = new ImageStack(imp.getWidth(), imp.getHeight());
        for (int i = 0; i < outs.length; i++) result.addSlice(stack.getSliceLabel(i + 1), outs[i]);
        ImagePlus out = new ImagePlus(stripExtension(imp.getTitle()) + "-" + method.id, result);
        out.setDimensions(nc, nz, nt);
        if (imp.isHyperStack()) out.setOpenAsHyperStack(true);
        return out;
    }

    private static int[] range(int n) {
        int[] r = new int[n];
        for (int i = 0; i < n; i++) r[i] = i + 1;
        return r;
    }

    private String optionString() {
        StringBuilder b = new StringBuilder("method=" + method.id);
        if (axis == Pixels.Axis.FRAMES) b.append(" z_axis=frames");
        for (int i = 0; i < keys.length; i++) b.append(' ').append(keys[i]).append('=').append(values[i]);
        for (int i = 0; i < imageTitles.length; i++) {
            if (!NONE.equals(imageTitles[i])) {
                b.append(' ').append(method.images.get(i).key).append("=[").append(imageTitles[i]).append(']');
            }
        }
        return b.toString();
    }

    private static void appendInfo(ImagePlus im, String line) {
        String old = (String) im.getProperty("Info");
        im.setProperty("Info", (old == null || old.isEmpty() ? "" : old + "\n") + line);
    }

    private static String stripExtension(String title) {
        int dot = title.lastIndexOf('.');
        return dot > 0 ? title.substring(0, dot) : title;
    }

    /** A new processor of the source's type (or float if asked) holding the result. */
    private ImageProcessor toProcessor(float[] src, int offset, int w, int h, ImageProcessor like) {
        ImageProcessor ip;
        if (floatResult || like instanceof FloatProcessor) {
            ip = new FloatProcessor(w, h);
        } else if (like instanceof ShortProcessor) {
            ip = new ShortProcessor(w, h);
        } else {
            ip = new ByteProcessor(w, h);
        }
        Rectangle full = new Rectangle(0, 0, w, h);
        Pixels.write(ip, src, offset, w, full, full);
        return ip;
    }

    static Map<String, String> parseOptions(String options) {
        Map<String, String> m = new HashMap<String, String>();
        for (String kv : options.trim().split("\\s+")) {
            int eq = kv.indexOf('=');
            if (eq > 0) m.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return m;
    }

    static String registryHelp(List<MethodSpec> methods) {
        StringBuilder b = new StringBuilder("<html><h2>DenoiseKit methods</h2><dl>");
        for (MethodSpec m : methods) {
            b.append("<dt><b>").append(m.id).append("</b>: ").append(m.name).append("</dt><dd>")
                    .append(m.summary).append("</dd>");
        }
        return b.append("</dl></html>").toString();
    }

    private static String methodHelp(MethodSpec m) {
        StringBuilder b = new StringBuilder("<html><h2>").append(m.name).append("</h2><p>").append(m.summary).append("</p><dl>");
        for (ParamSpec p : m.params) {
            b.append("<dt><b>").append(p.key).append("</b> ").append(p.isChoice() ? String.join(" | ", p.options) : p.rangeText())
                    .append("</dt><dd>").append(p.help).append("</dd>");
        }
        for (MethodSpec.ImageInput in : m.images) {
            b.append("<dt><b>").append(in.key).append("</b> an open image</dt><dd>").append(in.help)
                    .append(" Used with ").append(in.whenKey).append('=').append(in.whenValue).append(".</dd>");
        }
        b.append("</dl><p>Views: <b>denoised</b>; <b>residual</b> (input minus output: what was removed; "
                + "structure here means the setting removes signal); <b>split</b> (left half original, right half denoised).</p>"
                + "<h3>References</h3><ul>");
        for (String r : m.references) b.append("<li>").append(r).append("</li>");
        return b.append("</ul></html>").toString();
    }
}

