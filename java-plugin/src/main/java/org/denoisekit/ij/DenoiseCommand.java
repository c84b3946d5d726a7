package org.denoisekit.ij;

import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.CompositeImage;
import ij.gui.DialogListener;
import ij.gui.GenericDialog;
import ij.plugin.filter.ExtendedPlugInFilter;
import ij.plugin.filter.PlugInFilterRunner;
import ij.process.ByteProcessor;
import ij.process.FloatProcessor;
import ij.process.ImageProcessor;
import ij.process.ShortProcessor;
import java.awt.AWTEvent;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.denoisekit.DenoiseKitException;
import org.denoisekit.MethodSpec;
import org.denoisekit.NativeBridge;
import org.denoisekit.ParamSpec;

/**
 * Plugins &gt; DenoiseKit &gt; Denoise...: choose a method, tune its parameters with a live
 * preview, then denoise the image, stack or hyperstack (each channel and frame as its
 * own z-stack, so 3D methods see the z neighbourhood).
 *
 * <p>Both dialogs are built from the native registry: the labels start with the
 * parameter keys, so ImageJ's recorder writes exactly the keys the CLI accepts, e.g.
 * {@code run("Denoise...", "method=nl_means backend=auto h=0.08 patch_radius=2 search_radius=6")}.
 * The source image is left unchanged unless {@code in_place} is ticked. No state is static:
 * each invocation starts from the method's defaults.
 */
public class DenoiseCommand implements ExtendedPlugInFilter, DialogListener {
    private static final int FLAGS = DOES_8G | DOES_16 | DOES_32;
    private static final String[] BACKENDS = {"auto", "cpu", "gpu"};

    private ImagePlus imp;
    private MethodSpec method;
    private String backend = "auto";
    private String[] keys = new String[0];
    private String[] values = new String[0];
    private boolean inPlace;
    private boolean floatResult;
    private volatile boolean dialogOpen;
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
            GenericDialog gd1 = new GenericDialog("Denoise");
            gd1.addChoice("method", ids, ids[0]);
            gd1.addChoice("backend", BACKENDS, "auto");
            gd1.addHelp(registryHelp(methods));
            gd1.showDialog();
            if (gd1.wasCanceled()) return DONE;
            method = NativeBridge.method(gd1.getNextChoice());
            backend = gd1.getNextChoice();

            // Defaults and the noise readout come from the channel and frame on screen: the
            // data the preview shows, and one copy instead of the whole hyperstack.
            Volume here = Volume.ofStack(imp, imp.getC(), imp.getT());
            Map<String, String> defaults = parseOptions(NativeBridge.resolve(method.id, here.pixels, here.dims, null, null));
            double noise = NativeBridge.estimateNoise(here.pixels, here.dims);

            GenericDialog gd = new GenericDialog("Denoise: " + method.name);
            gd.addMessage(wrap(method.summary, 72));
            for (ParamSpec p : method.params) addField(gd, p, defaults.get(p.key));
            gd.addCheckbox("in_place (modify the original image)", false);
            gd.addCheckbox("float_result (32-bit output)", false);
            gd.addMessage("Estimated noise sigma: " + IJ.d2s(noise, 4, 4) + " grey levels");
            gd.addHelp(methodHelp(method));
            gd.addPreviewCheckbox(pfr);
            gd.addDialogListener(this);
            dialogThread = Thread.currentThread();
            dialogOpen = true;
            gd.showDialog();
            dialogOpen = false;
            if (gd.wasCanceled()) return DONE;
            String problem = readDialog(gd);
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
        return imp.getStackSize() > 1 ? FLAGS | NO_UNDO : FLAGS;
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

    private static void addField(GenericDialog gd, ParamSpec p, String def) {
        String unit = p.unitSuffix();
        String label = p.key + (unit.isEmpty() ? "" : " (" + unit + ")");
        if (p.isChoice()) {
            gd.addChoice(p.key, p.options, def != null ? def : p.defaultChoice);
            return;
        }
        double v = def != null ? Double.parseDouble(def) : p.defaultNumber;
        boolean bounded = !Double.isNaN(p.min) && !Double.isNaN(p.max);
        if (p.isInt() && bounded) {
            gd.addSlider(label, p.min, p.max, v, 1.0);
        } else if (bounded && "linear".equals(p.scale)) {
            gd.addSlider(label, p.min, p.max, v, 0.01);
        } else {
            gd.addNumericField(p.key, v, p.isInt() ? 0 : decimals(v), 10, unit);
        }
    }

    /** Enough decimals to show about four significant digits. */
    static int decimals(double v) {
        if (v == 0 || Double.isNaN(v) || Double.isInfinite(v)) return 2;
        int d = 3 - (int) Math.floor(Math.log10(Math.abs(v)));
        return Math.max(1, Math.min(9, d));
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
        inPlace = gd.getNextBoolean();
        floatResult = gd.getNextBoolean();
        if (inPlace && floatResult) {
            return "in_place keeps the image's bit depth: untick float_result, or in_place for a 32-bit copy";
        }
        if (inPlace && imp.getStack().isVirtual()) {
            return "in_place is not possible on a virtual stack (its slices are read from disk); untick it";
        }
        keys = k;
        values = v;
        return null;
    }

    @Override
    public boolean dialogItemChanged(GenericDialog gd, AWTEvent e) {
        String problem = readDialog(gd);
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
            if (dialogOpen) {
                IJ.showStatus("DenoiseKit: " + e.getMessage());
            } else {
                IJ.error("DenoiseKit", e.getMessage());
            }
        }
    }

    /** The current slice only, written into the displayed processor (restored by ImageJ). */
    private void preview(ImageProcessor ip) {
        Volume v = Volume.ofProcessor(ip);
        float[] out = NativeBridge.denoise(method.id, v.pixels, v.dims, keys, values, backend, null);
        writeInto(ip, out, 0);
    }

    private void apply() {
        ImageStack stack = imp.getStack();
        int w = imp.getWidth(), h = imp.getHeight();
        int nc = imp.getNChannels(), nz = imp.getNSlices(), nt = imp.getNFrames();
        ImageStack result = new ImageStack(w, h);
        ImageProcessor[] outs = new ImageProcessor[stack.getSize()];
        String[] info = new String[1];
        long t0 = System.nanoTime();
        int done = 0;
        for (int t = 1; t <= nt; t++) {
            for (int c = 1; c <= nc; c++) {
                Volume v = Volume.ofStack(imp, c, t);
                float[] out = NativeBridge.denoise(method.id, v.pixels, v.dims, keys, values, backend, info);
                for (int z = 1; z <= nz; z++) {
                    int index = imp.getStackIndex(c, z, t);
                    if (inPlace) {
                        writeInto(stack.getProcessor(index), out, (z - 1) * w * h);
                    } else {
                        outs[index - 1] = toProcessor(out, (z - 1) * w * h, w, h, stack.getProcessor(index));
                    }
                }
                IJ.showProgress(++done, nc * nt);
            }
        }
        String options = optionString();
        String note = "DenoiseKit " + NativeBridge.version() + ": " + options + " on " + info[0];
        IJ.log(String.format("%s (%.0f ms)", note, (System.nanoTime() - t0) / 1e6));
        if (inPlace) {
            appendInfo(imp, note);
            imp.updateAndDraw();
            return;
        }
        for (int i = 0; i < outs.length; i++) result.addSlice(stack.getSliceLabel(i + 1), outs[i]);
        ImagePlus out = new ImagePlus(stripExtension(imp.getTitle()) + "-" + method.id, result);
        out.setDimensions(nc, nz, nt);
        if (imp.isHyperStack()) out.setOpenAsHyperStack(true);
        out.setCalibration(imp.getCalibration().copy());
        String srcInfo = (String) imp.getProperty("Info");
        if (srcInfo != null) out.setProperty("Info", srcInfo);
        appendInfo(out, note);
        if (imp.isComposite() && nc > 1) {
            CompositeImage ci = new CompositeImage(out, ((CompositeImage) imp).getMode());
            ci.setLuts(((CompositeImage) imp).getLuts());
            out = ci;
        } else {
            out.getProcessor().setColorModel(imp.getProcessor().getColorModel());
            out.resetDisplayRange();
        }
        out.show();
    }

    private String optionString() {
        StringBuilder b = new StringBuilder("method=" + method.id);
        for (int i = 0; i < keys.length; i++) b.append(' ').append(keys[i]).append('=').append(values[i]);
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

    /** Result values into an existing processor of any supported type. */
    private void writeInto(ImageProcessor ip, float[] src, int offset) {
        int n = ip.getWidth() * ip.getHeight();
        Object px = ip.getPixels();
        if (px instanceof float[]) {
            System.arraycopy(src, offset, px, 0, n);
        } else if (px instanceof short[]) {
            short[] p = (short[]) px;
            for (int i = 0; i < n; i++) p[i] = (short) clampRound(src[offset + i], 65535);
        } else if (px instanceof byte[]) {
            byte[] p = (byte[]) px;
            for (int i = 0; i < n; i++) p[i] = (byte) clampRound(src[offset + i], 255);
        }
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
        writeInto(ip, src, offset);
        return ip;
    }

    /** Rounds to the nearest integer and clamps to [0, max]: the type's own range only. */
    static int clampRound(float v, int max) {
        long r = Math.round((double) v);
        return (int) Math.max(0, Math.min(max, r));
    }

    static Map<String, String> parseOptions(String options) {
        Map<String, String> m = new HashMap<String, String>();
        for (String kv : options.trim().split("\\s+")) {
            int eq = kv.indexOf('=');
            if (eq > 0) m.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return m;
    }

    private static String registryHelp(List<MethodSpec> methods) {
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
        b.append("</dl><h3>References</h3><ul>");
        for (String r : m.references) b.append("<li>").append(r).append("</li>");
        return b.append("</ul></html>").toString();
    }

    /** Pixels of one image, slice or z-stack as floats in raw grey levels, with {w, h, d}. */
    static final class Volume {
        final float[] pixels;
        final int[] dims;

        private Volume(float[] pixels, int w, int h, int d) {
            this.pixels = pixels;
            this.dims = new int[] {w, h, d};
        }

        static Volume ofProcessor(ImageProcessor ip) {
            int n = ip.getWidth() * ip.getHeight();
            float[] out = new float[n];
            copy(ip, out, 0);
            return new Volume(out, ip.getWidth(), ip.getHeight(), 1);
        }

        static Volume ofStack(ImagePlus imp, int c, int t) {
            int w = imp.getWidth(), h = imp.getHeight(), nz = imp.getNSlices();
            float[] out = new float[checkedSize(w, h, nz)];
            for (int z = 1; z <= nz; z++) copy(imp.getStack().getProcessor(imp.getStackIndex(c, z, t)), out, (z - 1) * w * h);
            return new Volume(out, w, h, nz);
        }

        /** Java arrays hold at most 2^31 - 1 values: larger volumes need the CLI. */
        static int checkedSize(int w, int h, int d) {
            long n = (long) w * h * d;
            if (n > Integer.MAX_VALUE - 8) {
                throw new DenoiseKitException("TooLarge", w + "x" + h + "x" + d + " = " + n
                        + " voxels exceed the 2^31 values a Java array can hold; process fewer slices or use the denoisekit CLI");
            }
            return (int) n;
        }

        private static void copy(ImageProcessor ip, float[] dst, int offset) {
            int n = ip.getWidth() * ip.getHeight();
            Object px = ip.getPixels();
            if (px instanceof float[]) {
                System.arraycopy(px, 0, dst, offset, n);
            } else if (px instanceof short[]) {
                short[] p = (short[]) px;
                for (int i = 0; i < n; i++) dst[offset + i] = p[i] & 0xffff;
            } else if (px instanceof byte[]) {
                byte[] p = (byte[]) px;
                for (int i = 0; i < n; i++) dst[offset + i] = p[i] & 0xff;
            } else {
                throw new DenoiseKitException("InvalidInput", "DenoiseKit needs an 8-bit, 16-bit or 32-bit grey image");
            }
        }
    }
}
