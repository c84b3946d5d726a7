package org.denoisekit.ij;

import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.gui.GenericDialog;
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
        gd.addChoice("backend", NativeBridge.backends(), NativeBridge.backends()[0]);
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
            attachClicks(montage);
        } catch (DenoiseKitException e) {
            if ("Cancelled".equals(e.getKind())) IJ.showStatus("Compare Methods: cancelled");
            else IJ.error("DenoiseKit", DenoiseCommand.explain(e, false));
        }
    }

    /** The region compared: the selection's bounds, else the slice, capped to 512x512. */
    static Rectangle region(ImagePlus imp) {
        return DenoiseCommand.previewRegion(imp);
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
        // Esc stops it; ImageJ's bar shows the ranking's progress, then each method's.
        CancelWatch watch = new CancelWatch(Thread.currentThread(), true, f -> IJ.showProgress(f));
        try {
            return compare(imp, backend, residuals, tuned, watch);
        } finally {
            watch.close();
            IJ.showProgress(1.0);
        }
    }

    private static ImagePlus compare(ImagePlus imp, String backend, boolean residuals, boolean tuned,
            CancelWatch watch) {
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
        bottom.addSlice("original\nnoise sigma " + DenoiseCommand.fmt(NativeBridge.estimateNoise(input.data, input.dims)),
                new FloatProcessor(r.width, r.height));
        IJ.log("DenoiseKit " + NativeBridge.version() + " Compare Methods on " + imp.getTitle() + " " + r.width + "x"
                + r.height + " at (" + r.x + ", " + r.y + ")");
        Map<String, String[]> ranked = new java.util.HashMap<String, String[]>();
        String best = null;
        if (tuned) {
            IJ.showStatus("DenoiseKit: tuning and ranking the denoisers...");
            watch.stage(0, 1);
            for (String line : NativeBridge.rank(input.data, input.dims, null, watch.job)) {
                String[] idLossOptions = line.split(" ", 3);
                if (idLossOptions.length < 3) continue;
                ranked.put(idLossOptions[0], idLossOptions);
                if (best == null) best = idLossOptions[0];
            }
            IJ.log("  expected best by the self-supervised loss: " + best);
        }
        // The first call into the library pays for thread pools and, on the GPU, each
        // method's pipelines: a small run of every method first, untimed, keeps that out of
        // the times shown.
        Rectangle warm = new Rectangle(r.x, r.y, Math.min(r.width, 32), Math.min(r.height, 32));
        int done = 0;
        List<String[]> tiles = new java.util.ArrayList<String[]>();
        for (MethodSpec m : methods) {
            // Automatic parameters come from the noise in the compared region; pinning them
            // lets the halo-grown computation use the very same values.
            String[] rank = ranked.get(m.id);
            String autoOptions;
            float[] out;
            long t0;
            try {
                autoOptions = rank != null ? rank[2] : NativeBridge.resolve(m.id, input.data, input.dims, null, null);
                Map<String, String> auto = DenoiseCommand.parseOptions(autoOptions);
                String[] keys = auto.keySet().toArray(new String[0]);
                String[] values = new String[keys.length];
                for (int i = 0; i < keys.length; i++) values[i] = auto.get(keys[i]);
                watch.stage(done, methods.size());
                // At the method's quick settings: zs_n2n's full training took most of
                // Compare's time in its warm-up alone.
                String[] quick = values.clone();
                for (int i = 0; i < keys.length; i++) {
                    if (m.quick.containsKey(keys[i])) quick[i] = m.quick.get(keys[i]);
                }
                try {
                    DenoiseJob.denoiseRegion(imp, m, keys, quick, backend, warm, watch.job);
                } catch (DenoiseKitException e) {
                    // Only for the times shown: the compared region may suit the method
                    // where the small warm-up region does not.
                    if ("Cancelled".equals(e.getKind())) throw e;
                }
                t0 = System.nanoTime();
                out = DenoiseJob.denoiseRegion(imp, m, keys, values, backend, r, watch.job);
            } catch (DenoiseKitException e) {
                if ("Cancelled".equals(e.getKind())) throw e;
                // One method that cannot run here (the learned one on a plane smaller than
                // its network's view) must not cost the user the others' comparison.
                IJ.log(String.format("  %-22s not compared: %s", m.id, e.getMessage()));
                done++;
                continue;
            }
            double ms = (System.nanoTime() - t0) / 1e6;
            String score = rank != null ? (m.id.equals(best) ? "* " : "") + "loss "
                    + DenoiseCommand.fmt(Double.parseDouble(rank[1])) : tuned ? "defaults" : "automatic";
            String label = m.name + "\n" + score + " \u00b7 " + DenoiseCommand.fmt(ms) + " ms";
            top.addSlice(label, new FloatProcessor(r.width, r.height, out));
            tiles.add(new String[] {m.id, autoOptions});
            float[] res = new float[out.length];
            for (int i = 0; i < res.length; i++) res[i] = input.data[i] - out[i];
            bottom.addSlice(m.name + "\nresidual", new FloatProcessor(r.width, r.height, res));
            IJ.log(String.format("  %-22s %8.1f ms  %s%s", m.id, ms,
                    rank != null ? "loss " + DenoiseCommand.fmt(Double.parseDouble(rank[1])) + "  " : "", autoOptions));
            done++;
        }
        if (tiles.isEmpty()) {
            throw new DenoiseKitException("InvalidInput", "no method could run on this region: the Log says why for "
                    + "each");
        }
        int n = top.getSize();
        // Panels become 8-bit with shared ranges: every denoised panel on the original's
        // range, every residual on one symmetric range, so brightness compares across panels.
        FloatProcessor orig = (FloatProcessor) top.getProcessor(1);
        orig.resetMinAndMax();
        double lo = orig.getMin(), hi = orig.getMax();
        double spread = Math.max(1e-12, (hi - lo) * 0.25);
        ImagePlus montage = montage(top, bottom, residuals, lo, hi, spread, r);
        montage.setTitle("Compare Methods - " + imp.getTitle());
        montage.setProperty(TILES, new Tiles(imp, tiles, montage.getWidth() / n, residuals ? 2 : 1));
        return montage;
    }

    /** The Info key under which a montage keeps what its tiles show, for clicks. */
    static final String TILES = "denoisekit.compare.tiles";

    /** What a montage's tiles show: the tile at column i (after the original) is method i. */
    static final class Tiles {
        final ImagePlus source;
        final List<String[]> idAndOptions;
        final int tileWidth;
        final int rows;

        Tiles(ImagePlus source, List<String[]> idAndOptions, int tileWidth, int rows) {
            this.source = source;
            this.idAndOptions = idAndOptions;
            this.tileWidth = tileWidth;
            this.rows = rows;
        }

        /** The method id and options at montage pixel x, or null for the original. */
        String[] at(int x) {
            int col = x / tileWidth - 1;
            return col >= 0 && col < idAndOptions.size() ? idAndOptions.get(col) : null;
        }
    }

    /** Tiles side by side (residuals underneath), each with two lines of label below it. */
    private static ImagePlus montage(ImageStack top, ImageStack bottom, boolean residuals, double lo, double hi,
            double spread, Rectangle r) {
        int n = top.getSize();
        double scale = r.width > 256 ? 256.0 / r.width : 1.0;
        int tw = Math.max(1, (int) Math.round(r.width * scale)), th = Math.max(1, (int) Math.round(r.height * scale));
        int tileW = Math.max(tw, 150) + 4, labelH = 34;
        int rows = residuals ? 2 : 1;
        ij.process.ByteProcessor out = new ij.process.ByteProcessor(tileW * n, (th + labelH) * rows);
        out.setColor(255);
        out.fill();
        java.awt.Font font = new java.awt.Font("SansSerif", java.awt.Font.PLAIN, 12);
        out.setFont(font);
        out.setAntialiasedText(true);
        for (int row = 0; row < rows; row++) {
            ImageStack st = row == 0 ? top : bottom;
            for (int i = 1; i <= n; i++) {
                ij.process.ImageProcessor ip = st.getProcessor(i);
                if (row == 0) ip.setMinAndMax(lo, hi);
                else ip.setMinAndMax(-spread, spread);
                ij.process.ImageProcessor b = ip.convertToByte(true);
                if (scale != 1.0) {
                    b.setInterpolationMethod(ij.process.ImageProcessor.BILINEAR);
                    b = b.resize(tw, th, true);
                }
                int x0 = (i - 1) * tileW + (tileW - tw) / 2, y0 = row * (th + labelH);
                out.insert(b, x0, y0);
                String[] lines = st.getSliceLabel(i).split("\n");
                out.setColor(0);
                for (int k = 0; k < lines.length && k < 2; k++) {
                    String text = lines[k];
                    // Shortened only if a label cannot fit the tile at all.
                    while (out.getStringWidth(text) > tileW - 4 && text.length() > 4) {
                        text = text.substring(0, text.length() - 2) + "\u2026";
                    }
                    out.drawString(text, (i - 1) * tileW + 2, y0 + th + 15 + 15 * k);
                }
                out.setColor(255);
            }
        }
        return new ImagePlus("methods", out);
    }

    /**
     * A click on a method's tile opens the Denoise panel on the compared image with that
     * method and the settings the tile shows.
     */
    static void attachClicks(final ImagePlus montage) {
        final ij.gui.ImageCanvas canvas = montage.getCanvas();
        if (canvas == null) return;
        canvas.addMouseListener(new java.awt.event.MouseAdapter() {
            @Override
            public void mouseClicked(java.awt.event.MouseEvent e) {
                Object t = montage.getProperty(TILES);
                if (!(t instanceof Tiles)) return;
                Tiles tiles = (Tiles) t;
                String[] hit = tiles.at(canvas.offScreenX(e.getX()));
                if (hit == null || tiles.source.getWindow() == null) return;
                DenoisePanel.open(tiles.source, hit[0], DenoiseCommand.parseOptions(hit[1]));
            }
        });
        IJ.showStatus("Compare Methods: click a tile to open the Denoise panel on that method");
    }
}
