package org.denoisekit.ij;

import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.gui.GenericDialog;
import ij.plugin.MontageMaker;
import ij.plugin.PlugIn;
import ij.process.FloatProcessor;
import java.awt.Rectangle;
import java.util.List;
import java.util.Map;
import org.denoisekit.DenoiseKitException;
import org.denoisekit.MethodSpec;
import org.denoisekit.NativeBridge;

/**
 * Plugins &gt; DenoiseKit &gt; Compare Methods...: every method at its automatic (noise-derived)
 * parameters on the selection of the current slice (or a centred 512x512 region), as a
 * labelled montage with each method's time, optionally with the residuals (what each
 * method removed) underneath; with {@code tuned} (the dialog's default), each denoiser
 * tuned self-supervised and its loss under its tile, the expected best starred. Each result is computed with the method's support halo,
 * so it is exactly what Denoise... would give there. Recordable:
 * {@code run("Compare Methods...", "backend=auto residuals tuned")}.
 */
public class CompareCommand implements PlugIn {
    private static final int MAX_SIDE = 512;

    @Override
    public void run(String arg) {
        ImagePlus imp = IJ.getImage();
        if (imp == null) return;
        int bits = imp.getBitDepth();
        if (bits == 24) {
            IJ.error("DenoiseKit", "Compare Methods needs an 8-bit, 16-bit or 32-bit grey image");
            return;
        }
        GenericDialog gd = new GenericDialog("Compare Methods");
        gd.addChoice("backend", new String[] {"auto", "cpu", "gpu"}, "auto");
        gd.addCheckbox("residuals (input minus output, underneath)", false);
        gd.addCheckbox("tuned (each denoiser tuned self-supervised, ranked by one loss; slower)", true);
        gd.showDialog();
        if (gd.wasCanceled()) return;
        String backend = gd.getNextChoice();
        boolean residuals = gd.getNextBoolean();
        boolean tuned = gd.getNextBoolean();
        try {
            ImagePlus montage = compare(imp, backend, residuals, tuned);
            montage.show();
        } catch (DenoiseKitException e) {
            IJ.error("DenoiseKit", e.getMessage());
        }
    }

    /** The region compared: the selection's bounds, else the slice, capped to 512x512. */
    static Rectangle region(ImagePlus imp) {
        Rectangle r = DenoiseCommand.previewRegion(imp);
        int w = Math.min(r.width, MAX_SIDE), h = Math.min(r.height, MAX_SIDE);
        return new Rectangle(r.x + (r.width - w) / 2, r.y + (r.height - h) / 2, w, h);
    }

    static ImagePlus compare(ImagePlus imp, String backend, boolean residuals) {
        return compare(imp, backend, residuals, false);
    }

    /**
     * With {@code tuned}, every denoiser with a tunable strength runs at its self-supervised
     * setting and its tile shows its loss (the masked loss on the same hidden pixels for
     * all: an estimate of the squared error plus the noise variance), the lowest marked
     * with a star as the expected best; the others run at their defaults.
     */
    static ImagePlus compare(ImagePlus imp, String backend, boolean residuals, boolean tuned) {
        Rectangle r = region(imp);
        Pixels input = Pixels.of(imp, imp.getC(), imp.getZ(), imp.getZ(), imp.getT(), r);
        // Denoisers only: a deconvolution or a background remover answers another
        // question, and its panel on the original's grey range would mislead.
        List<MethodSpec> methods = new java.util.ArrayList<MethodSpec>();
        for (MethodSpec m : NativeBridge.methods()) {
            if ("denoise".equals(m.kind)) methods.add(m);
        }
        ImageStack top = new ImageStack(r.width, r.height);
        ImageStack bottom = new ImageStack(r.width, r.height);
        top.addSlice("original", new FloatProcessor(r.width, r.height, input.data.clone()));
        bottom.addSlice("noise sigma " + IJ.d2s(NativeBridge.estimateNoise(input.data, input.dims), 3, 4),
                new FloatProcessor(r.width, r.height));
        IJ.log("DenoiseKit " + NativeBridge.version() + " Compare Methods on " + imp.getTitle() + " " + r.width + "x"
                + r.height + " at (" + r.x + ", " + r.y + ")");
        Map<String, String[]> ranked = new java.util.HashMap<String, String[]>();
        String best = null;
        if (tuned) {
            IJ.showStatus("DenoiseKit: tuning and ranking the denoisers...");
            for (String line : NativeBridge.rank(input.data, input.dims, null)) {
                String[] idLossOptions = line.split(" ", 3);
                if (idLossOptions.length < 3) continue;
                ranked.put(idLossOptions[0], idLossOptions);
                if (best == null) best = idLossOptions[0];
            }
            IJ.log("  expected best by the self-supervised loss: " + best);
        }
        int done = 0;
        for (MethodSpec m : methods) {
            // Automatic parameters come from the noise in the compared region; pinning them
            // lets the halo-grown computation use the very same values.
            String[] rank = ranked.get(m.id);
            String autoOptions = rank != null ? rank[2] : NativeBridge.resolve(m.id, input.data, input.dims, null, null);
            Map<String, String> auto = DenoiseCommand.parseOptions(autoOptions);
            String[] keys = auto.keySet().toArray(new String[0]);
            String[] values = new String[keys.length];
            for (int i = 0; i < keys.length; i++) values[i] = auto.get(keys[i]);
            long t0 = System.nanoTime();
            float[] out = DenoiseCommand.denoiseRegion(imp, m, keys, values, backend, r, 0L);
            double ms = (System.nanoTime() - t0) / 1e6;
            String label = m.id + " (" + IJ.d2s(ms, 0) + " ms)";
            if (rank != null) {
                double loss = Double.parseDouble(rank[1]);
                label = (m.id.equals(best) ? "* " : "") + m.id + " loss " + IJ.d2s(loss, DenoiseCommand.decimals(loss))
                        + " (" + IJ.d2s(ms, 0) + " ms)";
            } else if (tuned) {
                label = m.id + " defaults (" + IJ.d2s(ms, 0) + " ms)";
            }
            top.addSlice(label, new FloatProcessor(r.width, r.height, out));
            float[] res = new float[out.length];
            for (int i = 0; i < res.length; i++) res[i] = input.data[i] - out[i];
            bottom.addSlice(m.id + " residual", new FloatProcessor(r.width, r.height, res));
            IJ.log(String.format("  %-22s %8.1f ms  %s%s", m.id, ms,
                    rank != null ? "loss " + rank[1] + "  " : "", autoOptions));
            IJ.showProgress(++done, methods.size());
        }
        int n = top.getSize();
        // Panels become 8-bit with shared ranges: every denoised panel on the original's
        // range, every residual on one symmetric range, so brightness compares across panels.
        FloatProcessor orig = (FloatProcessor) top.getProcessor(1);
        orig.resetMinAndMax();
        double lo = orig.getMin(), hi = orig.getMax();
        double spread = Math.max(1e-12, (hi - lo) * 0.25);
        ImageStack all = new ImageStack(r.width, r.height);
        for (int i = 1; i <= n; i++) {
            top.getProcessor(i).setMinAndMax(lo, hi);
            all.addSlice(top.getSliceLabel(i), top.getProcessor(i).convertToByte(true));
        }
        if (residuals) {
            for (int i = 1; i <= n; i++) {
                bottom.getProcessor(i).setMinAndMax(-spread, spread);
                all.addSlice(bottom.getSliceLabel(i), bottom.getProcessor(i).convertToByte(true));
            }
        }
        ImagePlus stack = new ImagePlus("methods", all);
        int rows = residuals ? 2 : 1;
        double scale = r.width > 256 ? 256.0 / r.width : 1.0;
        ImagePlus montage = new MontageMaker().makeMontage2(stack, n, rows, scale, 1, all.getSize(), 1, 2, true);
        montage.setTitle("Compare Methods - " + imp.getTitle());
        return montage;
    }
}
