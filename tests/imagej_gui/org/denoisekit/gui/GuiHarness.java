package org.denoisekit.gui;

import ij.CompositeImage;
import ij.IJ;
import ij.ImageJ;
import ij.ImagePlus;
import ij.WindowManager;
import ij.measure.Calibration;
import ij.plugin.Duplicator;
import ij.plugin.frame.Recorder;
import ij.process.ImageProcessor;
import ij.process.LUT;
import java.awt.Rectangle;
import java.awt.Robot;
import java.awt.Window;
import java.io.File;
import java.util.Arrays;
import javax.imageio.ImageIO;

/**
 * Drives the real ImageJ user interface the way a person does (the menu command, the
 * Denoise panel's method list, fields, buttons and view, a Compare Methods tile, the macro
 * recorder), under Xvfb, and prints what it observed, one "key: value" line each
 * (tests/imagej.rs reads them):
 *
 * <pre>
 * strength-line, noise-line, residual-line   the panel's lines
 * z-fields-on-2d / -3d: hidden|shown         whether z parameters are offered
 * bad-value: TEXT                            the message under a field holding "abc"
 * preview-equals-final: true|false           preview pixels on the selection vs Apply's result
 * recorded: run("Denoise...", "...")         the line Apply recorded
 * replay-identical: true|false               that line replayed vs the interactive result
 * replayed-as-recorded: N of T, M of decoy    the recorded lines run as a macro, another image current
 * path-read-back: true|false                 a recorded Windows path read back by the macro language
 * montage, compare-best, compare-bm3d-loss   Compare Methods (tuned)
 * compare-click: ID                          the method the panel shows after a tile's click
 * suggest: ID                                the denoiser Suggest selected
 * preview-latency / preview-peer: ...        the preview latency benchmark (printed only)
 * progress-3d, stop, stop-with-queued        a 3D job's progress bar, and Stop
 * in-place-failure, in-place-unchanged, nan-masked   NaN handling from a macro
 * z-axis-refused: MESSAGE; result: false      z_axis=frames on an image of slices only
 * slices-on-time-lapse: true|false           z_axis=slices on a time-lapse of single planes runs
 * unknown-option: MESSAGE                    a misspelt option
 * psf-per-channel: c1 B, c2 B                a PSF per channel, against each channel alone
 * psf-channels-refused, psf-pixels-refused   a PSF of another channel count or pixel size
 * signed16-float: B (...)                    float_result of a signed 16-bit image holds its values
 * compare-strip: N tiles; LINE               Compare Methods where the learned method cannot train
 * signed16-composite: B (RANGES)             the same on a composite: each channel's range mapped
 * compare-frames: B; OPTIONS                 a Compare tile on a time-lapse equals Denoise... there
 * rgb-copy, rgb-macro                        the way forward for an RGB image
 * noise-line-pg, camera-fields, pg-auto      the camera fields and Auto (Poisson-Gaussian)
 * pg-reopened: MODEL gain=G offset=O          the panel on the next image after an Apply under it
 * residual-contrast: mean=M std=S            the residual view's grey levels on a 32-bit image
 * learned-interims, learned-note             zs_n2n's preview while it trains: intermediate
 *                                            results shown, and its progress line
 * </pre>
 *
 * Screenshots of the panel, its residual view and the Compare Methods montage go to the
 * output folder. Arguments: image.tif output-folder.
 */
public class GuiHarness {
    // Generous: a loaded 2-core machine once took over a minute for one step.
    static final long TIMEOUT_MS = Long.getLong("harness.timeout", 120000);

    public static void main(String[] args) {
        try {
            drive(args);
        } catch (Throwable t) {
            // AWT's threads would keep the JVM alive after a failure: exit explicitly.
            t.printStackTrace();
            System.exit(1);
        }
    }

    static void drive(String[] args) throws Exception {
        watchdog();
        String image = args[0];
        File out = new File(args[1]);
        args1 = out;
        new ImageJ(ImageJ.NO_SHOW);
        ImagePlus imp = IJ.openImage(image);
        showCurrent(imp, "image window");
        imp.getWindow().setLocation(10, 10);
        Rectangle roi = new Rectangle(72, 24, 96, 72);
        imp.setRoi(roi);
        Recorder recorder = new Recorder();
        Recorder.record = true;

        IJ.doCommand("Denoise...");
        Window panel = waitPanel(imp.getTitle());
        chooseMethod(panel, "nl_means");
        // The panel opens at the self-supervised strength when the search is quick here; on
        // a loaded machine it may judge it too slow and say so: then Auto does it.
        waitFor(() -> text(panel, "strength").startsWith("Strength: self-supervised")
                || text(panel, "strength").contains("Auto searches it"), "the opening strength");
        if (text(panel, "strength").contains("Auto searches it")) {
            System.out.println("opening: " + text(panel, "strength"));
            waitFor(() -> find(panel, "Auto").isEnabled(), "the panel idle");
            click(panel, "Auto");
            waitFor(() -> text(panel, "strength").startsWith("Strength: self-supervised"), "Auto's strength");
        }
        System.out.println("strength-line: " + text(panel, "strength"));
        // No z fields on a 2D image.
        System.out.println("z-fields-on-2d: " + (find(panel, "search_radius_z").isShowing() ? "shown" : "hidden"));
        // A bad value is shown at its field, and the preview waits for a good one.
        setText(panel, "h", "abc");
        waitFor(() -> find(panel, "h.error").isShowing(), "the error at the field");
        System.out.println("bad-value: " + text(panel, "h.error"));
        Object before = shown(panel);
        setText(panel, "h", "60");
        waitFor(() -> shown(panel) != before && shown(panel) != null, "the preview");
        float[] previewed = stablePreview(panel);
        waitFor(() -> text(panel, "residual").startsWith("Residual check: ")
                && !text(panel, "residual").contains("shown with the preview"), "the residual check");
        System.out.println("residual-line: " + text(panel, "residual"));
        System.out.println("noise-line: " + text(panel, "noise"));
        Thread.sleep(300);
        hideLog();
        screenshot(new File(out, "denoise-panel.png"), union(imp.getWindow().getBounds(), panel.getBounds()));
        click(panel, "Apply");
        ImagePlus result = waitImage(imp.getShortTitle() + "-nl_means");
        // The result keeps the source's 16 bits: the preview's floats round the same way.
        for (int i = 0; i < previewed.length; i++) previewed[i] = Math.max(0, Math.min(65535, Math.round(previewed[i])));
        System.out.println("preview-equals-final: " + Arrays.equals(previewed, roiPixels(result, roi)));

        // The panel records its line once the job succeeded.
        waitFor(() -> Recorder.getInstance().getText().contains("run(\"Denoise...\""), "the recorded line");
        String recorded = null;
        for (String line : Recorder.getInstance().getText().split("\n")) {
            if (line.startsWith("run(\"Denoise...\"")) recorded = line;
        }
        System.out.println("recorded: " + recorded);
        String options = recorded.substring(recorded.indexOf(", \"") + 3, recorded.lastIndexOf("\")"));
        result.setTitle("interactive");
        IJ.run(imp, "Denoise...", options);
        ImagePlus replay = waitImage(imp.getShortTitle() + "-nl_means");
        System.out.println("replay-identical: " + Arrays.equals(allPixels(result), allPixels(replay)));
        // Replayed as recorded, with another image current: the lines name the panel's image.
        ImagePlus decoy = IJ.createImage("decoy", "16-bit ramp", 64, 48, 1);
        showCurrent(decoy, "decoy window");
        waitFor(() -> find(panel, "Apply").isEnabled(), "the panel idle for a second Apply");
        final String results = imp.getShortTitle() + "-nl_means";
        final int mark = Recorder.getInstance().getText().length(), had = countImages(results);
        click(panel, "Apply");
        waitFor(() -> countImages(results) == had + 1
                && Recorder.getInstance().getText().substring(mark).contains("run(\"Denoise...\""),
                "the line recorded with another image current");
        String lines = Recorder.getInstance().getText().substring(mark);
        showCurrent(decoy, "decoy window again");
        IJ.runMacro(lines);
        System.out.println("replayed-as-recorded: " + (countImages(results) - had - 1) + " of "
                + imp.getTitle() + ", " + countImages("decoy-nl_means") + " of decoy: " + lines.trim().replace('\n', ' '));
        decoy.changes = false;
        decoy.close();
        // A recorded value keeps a Windows path's backslashes and a quote: the macro reads
        // them back as they were.
        java.lang.reflect.Method quote = IJ.getClassLoader().loadClass("org.denoisekit.ij.DenoiseJob")
                .getDeclaredMethod("macroString", String.class);
        quote.setAccessible(true);
        String path = "weights=[C:\\Users\\ana\\new folder\\w \"1\".json]";
        System.out.println("path-read-back: " + path.equals(IJ.runMacro("return \"" + quote.invoke(null, path) + "\";")));

        imp.setRoi(new Rectangle(40, 36, 176, 128));
        IJ.run(imp, "Compare Methods...", "backend=cpu residuals tuned");
        ImagePlus montage = WindowManager.getCurrentImage();
        System.out.println("montage: " + montage.getWidth() + "x" + montage.getHeight() + ", " + tiles(montage)
                + " methods");
        // Tuned, each denoiser's loss is logged and the expected best named.
        for (String line : IJ.getLog().split("\n")) {
            if (line.contains("expected best by the self-supervised loss: ")) {
                System.out.println("compare-best: " + line.substring(line.indexOf(": ") + 2));
            }
            if (line.trim().startsWith("bm3d ") && line.contains(" loss ")) System.out.println("compare-bm3d-loss: yes");
        }
        IJ.saveAs(montage, "PNG", new File(out, "compare-methods.png").getPath());
        compareClick(montage, panel);
        learnedPreview(panel);
        suggestMethod(panel);
        latency(out);
        progressOnAStack();
        inPlaceFailure();
        userMends();
        rgbWayForward();
        poissonGaussianAuto();
        psfPerChannel();
        signedFloat();
        compareOnAStrip();
        compareAlongFrames();
        recorder.close();
        System.out.flush();
        System.exit(0);
    }

    /**
     * An in-place run on two channels whose second holds a NaN fails after the first was
     * denoised: the image must be exactly as before (nothing written until all succeed).
     */
    static void inPlaceFailure() {
        ImagePlus two = IJ.createImage("two", "32-bit ramp", 40, 32, 2, 1, 1);
        two.getStack().getProcessor(2).putPixelValue(5, 5, Float.NaN);
        float[][] before = {(float[]) two.getStack().getProcessor(1).getPixelsCopy(),
                (float[]) two.getStack().getProcessor(2).getPixelsCopy()};
        IJ.redirectErrorMessages();
        try {
            IJ.run(two, "Denoise...", "method=gaussian sigma=2 in_place");
        } catch (RuntimeException aborted) {
            // ImageJ aborts the calling "macro" after a command's error: expected here.
        }
        String text = IJ.getLog() == null ? "" : IJ.getLog();
        int at = text.indexOf("invalid input");
        System.out.println("in-place-failure: " + (at < 0 ? "(no error logged)" : text.substring(at + 15).split("\n")[0]));
        boolean same = true;
        for (int c = 0; c < 2; c++) {
            float[] now = (float[]) two.getStack().getProcessor(c + 1).getPixels();
            for (int i = 0; i < now.length; i++) {
                same &= Float.floatToIntBits(now[i]) == Float.floatToIntBits(before[c][i]);
            }
        }
        System.out.println("in-place-unchanged: " + same);
        // The way forward the error names: NaN as masked-out, NaN again in the result only there.
        IJ.run(two, "Denoise...", "method=gaussian sigma=2 nan_masked");
        ImagePlus masked = WindowManager.getImage("two-gaussian");
        boolean ok = masked != null;
        for (int c = 0; ok && c < 2; c++) {
            float[] now = (float[]) masked.getStack().getProcessor(c + 1).getPixels();
            for (int i = 0; i < now.length; i++) ok &= Float.isNaN(now[i]) == (c == 1 && i == 5 * 40 + 5);
        }
        System.out.println("nan-masked: " + ok);
        // A line recorded on a time-lapse (z_axis=frames), replayed on planes that opened as
        // plain slices: it denoised each slice alone and said nothing; now it is refused.
        ImagePlus slices = IJ.createImage("slices", "32-bit ramp", 40, 32, 6);
        IJ.redirectErrorMessages();
        try {
            IJ.run(slices, "Denoise...", "method=gaussian sigma=2 sigma_z=1 z_axis=frames");
        } catch (RuntimeException aborted) {
            // As above.
        }
        String log = IJ.getLog() == null ? "" : IJ.getLog();
        at = log.indexOf("z_axis=frames");
        System.out.println("z-axis-refused: " + (at < 0 ? "(no error logged)" : log.substring(at).split("\n")[0])
                + "; result: " + (WindowManager.getImage("slices-gaussian") != null));
        // Slices on a time-lapse of single planes is a choice the panel offers (each frame
        // alone): its recorded line still runs.
        ImagePlus lapse = IJ.createImage("lapse", "32-bit ramp", 40, 32, 1, 1, 3);
        IJ.run(lapse, "Denoise...", "method=gaussian sigma=2 z_axis=slices");
        System.out.println("slices-on-time-lapse: " + (WindowManager.getImage("lapse-gaussian") != null));
        // A misspelt option names every option the command takes, not only the method's.
        IJ.redirectErrorMessages();
        try {
            IJ.run(slices, "Denoise...", "method=gaussian sigma=2 zaxis=frames");
        } catch (RuntimeException aborted) {
            // As above.
        }
        log = IJ.getLog() == null ? "" : IJ.getLog();
        at = log.indexOf("unknown option zaxis=");
        System.out.println("unknown-option: " + (at < 0 ? "(no error logged)" : log.substring(at).split("\n")[0]));
    }

    /**
     * Compare Methods on a strip thinner than the learned method's network view: it is
     * left out with its reason, and every other method is compared.
     */
    static void compareOnAStrip() throws Exception {
        ImagePlus strip = IJ.createImage("strip", "32-bit ramp", 96, 14, 1);
        strip.getProcessor().noise(0.05);
        IJ.run(strip, "Compare Methods...", "backend=cpu");
        ImagePlus montage = WindowManager.getImage("Compare Methods - strip");
        String log = IJ.getLog() == null ? "" : IJ.getLog();
        int at = log.lastIndexOf("not compared: ");
        int from = log.lastIndexOf('\n', Math.max(0, at)) + 1;
        System.out.println("compare-strip: " + tiles(montage) + " methods; "
                + (at < 0 ? "(nothing left out)" : log.substring(from).split("\n")[0].trim()));
    }

    /**
     * Compare Methods on a frame of a time-lapse of single planes: a method's tile is what
     * Denoise... with the tile's options gives on the frame on screen (at Compare's
     * defaults every method runs plane by plane, so no halo reaches other frames).
     */
    static void compareAlongFrames() throws Exception {
        ImagePlus movie = IJ.createHyperStack("movie", 48, 40, 1, 1, 5, 32);
        for (int t = 1; t <= 5; t++) {
            ImageProcessor ip = movie.getStack().getProcessor(t);
            for (int y = 0; y < 40; y++) {
                for (int x = 0; x < 48; x++) ip.setf(x, y, (float) (100 + 50 * Math.sin((x + 3 * t) / 5.0) + 7 * ((x * 7 + y * 13 + t * 5) % 11)));
            }
        }
        movie.show();
        movie.setT(3);
        movie.setRoi(new Rectangle(8, 6, 30, 26));
        IJ.run(movie, "Compare Methods...", "backend=cpu");
        ImagePlus montage = WindowManager.getImage("Compare Methods - movie");
        java.util.List<String[]> shown = tileList(montage);
        String line = "no montage";
        if (!shown.isEmpty()) {
            int at = -1;
            for (int i = 0; i < shown.size(); i++) {
                if ("nl_means".equals(shown.get(i)[0])) at = i;
            }
            String options = at < 0 ? "" : shown.get(at)[1];
            movie.deleteRoi();
            IJ.run(movie, "Denoise...", "method=nl_means " + options);
            ImagePlus whole = WindowManager.getImage("movie-nl_means");
            line = at < 0 || whole == null ? "nl_means not shown" : String.valueOf(sameTile(montage, movie, whole, at + 2,
                    new Rectangle(8, 6, 30, 26), shown.size() + 1));
            line += "; " + options;
        }
        System.out.println("compare-frames: " + line);
    }

    /**
     * Whether tile {@code tile} (1: the original) of a montage of {@code n} tiles shows
     * frame 3's {@code r} of {@code result}, drawn as Compare draws it (8 bits on the
     * original's range).
     */
    static boolean sameTile(ImagePlus montage, ImagePlus src, ImagePlus result, int tile, Rectangle r, int n) {
        ImageProcessor orig = src.getStack().getProcessor(3).duplicate();
        orig.setRoi(r);
        orig = orig.crop();
        orig.resetMinAndMax();
        ImageProcessor mine = result.getStack().getProcessor(3).duplicate();
        mine.setRoi(r);
        mine = mine.crop();
        mine.setMinAndMax(orig.getMin(), orig.getMax());
        ImageProcessor b = mine.convertToByte(true);
        // Compare scales tiles wider than 256 pixels.
        if (r.width > 256) throw new IllegalArgumentException("a region Compare shows unscaled");
        int tileW = montage.getWidth() / n;
        int x0 = (tile - 1) * tileW + (tileW - r.width) / 2;
        ImageProcessor m = montage.getProcessor();
        for (int y = 0; y < r.height; y++) {
            for (int x = 0; x < r.width; x++) {
                if (m.get(x0 + x, y) != b.get(x, y)) return false;
            }
        }
        return true;
    }

    /** How many methods a Compare Methods montage shows (its click map's entries). */
    static int tiles(ImagePlus montage) throws Exception {
        return tileList(montage).size();
    }

    /** The method id and options of each of a montage's tiles after the original. */
    @SuppressWarnings("unchecked")
    static java.util.List<String[]> tileList(ImagePlus montage) throws Exception {
        Object t = montage == null ? null : montage.getProperty("denoisekit.compare.tiles");
        if (t == null) return java.util.Collections.emptyList();
        java.lang.reflect.Field f = t.getClass().getDeclaredField("idAndOptions");
        f.setAccessible(true);
        return (java.util.List<String[]>) f.get(t);
    }

    /**
     * float_result on a signed 16-bit image: ImageJ has no calibration function on 32-bit
     * images, so the result must hold the calibrated values (as Image > Type > 32-bit
     * gives), not the raw ones 32768 higher.
     */
    static void signedFloat() {
        ImagePlus s16 = IJ.createImage("signed", "16-bit ramp", 64, 48, 1);
        s16.getCalibration().setSigned16BitCalibration();
        s16.setDisplayRange(1000, 60000);
        IJ.run(s16, "Denoise...", "method=gaussian sigma=0 sigma_z=0 noise_model=gaussian float_result");
        ImagePlus f = WindowManager.getImage("signed-gaussian");
        double want = s16.getStatistics().mean, got = f == null ? Double.NaN : f.getStatistics().mean;
        Calibration c = s16.getCalibration();
        boolean shown = f != null && f.getDisplayRangeMin() == c.getCValue(1000) && f.getDisplayRangeMax() == c.getCValue(60000);
        System.out.println("signed16-float: " + (want == got && !f.getCalibration().calibrated() && shown) + " (mean "
                + got + " of " + want + ", display " + (f == null ? "" : f.getDisplayRangeMin() + ".." + f.getDisplayRangeMax())
                + ")");
        // A composite keeps each channel's LUT, its range mapped too.
        ImagePlus two = IJ.createHyperStack("signed2", 64, 48, 2, 1, 1, 16);
        two.getCalibration().setSigned16BitCalibration();
        two = new CompositeImage(two, IJ.COMPOSITE);
        two.setC(1);
        two.setDisplayRange(1000, 60000);
        two.setC(2);
        two.setDisplayRange(30000, 40000);
        IJ.run(two, "Denoise...", "method=gaussian sigma=0 sigma_z=0 noise_model=gaussian float_result");
        ImagePlus f2 = WindowManager.getImage("signed2-gaussian");
        StringBuilder ranges = new StringBuilder();
        if (f2 instanceof CompositeImage) {
            for (LUT lut : ((CompositeImage) f2).getLuts()) ranges.append(' ').append(lut.min).append("..").append(lut.max);
        }
        String want2 = " " + c.getCValue(1000) + ".." + c.getCValue(60000) + " " + c.getCValue(30000) + ".."
                + c.getCValue(40000);
        System.out.println("signed16-composite: " + want2.equals(ranges.toString()) + " (" + ranges.toString().trim()
                + ")");
    }

    /**
     * A measured PSF per channel: a two-channel image deconvolved with a two-channel PSF
     * gives each channel its own (the first channel's served both), as each channel
     * deconvolved alone with its PSF does. A PSF of another channel count, or with pixels
     * of another size, is refused.
     */
    static void psfPerChannel() throws Exception {
        // Two time points: the PSF's copies, read once per channel, serve both.
        ImagePlus img = IJ.createHyperStack("cells", 40, 32, 2, 3, 2, 32);
        for (int i = 1; i <= img.getStackSize(); i++) {
            ImageProcessor ip = img.getStack().getProcessor(i);
            for (int y = 0; y < 32; y++) {
                for (int x = 0; x < 40; x++) {
                    boolean spot = (x % 9 == 4 && y % 7 == 3) || (x + i) % 13 == 0;
                    ip.setf(x, y, 100 + (spot ? 400 : 0) + 10 * i);
                }
            }
        }
        ImagePlus psf = IJ.createHyperStack("psf2", 9, 9, 2, 3, 1, 32);
        for (int c = 1; c <= 2; c++) {
            // Channel 2's PSF is twice as wide: the channels' results differ clearly.
            double sigma = c == 1 ? 0.8 : 1.6;
            for (int z = 1; z <= 3; z++) {
                ImageProcessor ip = psf.getStack().getProcessor(psf.getStackIndex(c, z, 1));
                for (int y = 0; y < 9; y++) {
                    for (int x = 0; x < 9; x++) {
                        double r2 = (x - 4) * (x - 4) + (y - 4) * (y - 4) + 2 * (z - 2) * (z - 2);
                        ip.setf(x, y, (float) Math.exp(-r2 / (2 * sigma * sigma)));
                    }
                }
            }
        }
        for (ImagePlus im : new ImagePlus[] {img, psf}) {
            Calibration cal = im.getCalibration();
            cal.pixelWidth = cal.pixelHeight = 0.25;
            cal.pixelDepth = 0.8;
            cal.setUnit("micron");
        }
        psf.show();
        String options = "method=richardson_lucy iterations=5 psf=image psf_image=";
        IJ.run(img, "Denoise...", options + "[psf2]");
        ImagePlus both = WindowManager.getImage("cells-richardson_lucy");
        StringBuilder line = new StringBuilder("psf-per-channel:");
        for (int c = 1; c <= 2; c++) {
            ImagePlus own = new Duplicator().run(psf, c, c, 1, 3, 1, 1);
            own.setTitle("psf c" + c);
            own.show();
            boolean same = both != null;
            for (int t = 1; t <= 2; t++) {
                ImagePlus one = new Duplicator().run(img, c, c, 1, 3, t, t);
                one.setTitle("cells c" + c + " t" + t);
                IJ.run(one, "Denoise...", options + "[psf c" + c + "]");
                ImagePlus alone = WindowManager.getImage("cells c" + c + " t" + t + "-richardson_lucy");
                same &= alone != null;
                for (int z = 1; same && z <= 3; z++) {
                    float[] a = (float[]) both.getStack().getProcessor(both.getStackIndex(c, z, t)).getPixels();
                    float[] b = (float[]) alone.getStack().getProcessor(z).getPixels();
                    same = java.util.Arrays.equals(a, b);
                }
            }
            line.append(c == 1 ? " c" : ", c").append(c).append(' ').append(same);
        }
        System.out.println(line);
        ImagePlus three = IJ.createHyperStack("psf3", 9, 9, 3, 3, 1, 32);
        three.setCalibration(psf.getCalibration().copy());
        three.show();
        ImagePlus fine = new Duplicator().run(psf, 1, 1, 1, 3, 1, 1);
        fine.setTitle("psf fine");
        fine.getCalibration().pixelWidth = fine.getCalibration().pixelHeight = 0.1;
        fine.show();
        for (String[] c : new String[][] {{"psf3", "psf-channels-refused: "}, {"psf fine", "psf-pixels-refused: "}}) {
            IJ.redirectErrorMessages();
            try {
                IJ.run(img, "Denoise...", options + "[" + c[0] + "]");
            } catch (RuntimeException aborted) {
                // ImageJ aborts the calling "macro" after a command's error: expected here.
            }
            String log = IJ.getLog() == null ? "" : IJ.getLog();
            int at = log.lastIndexOf("psf_image=[" + c[0] + "]");
            System.out.println(c[1] + (at < 0 ? "(no error logged)" : log.substring(at).split("\n")[0]));
        }
    }

    /**
     * What users ran into: a NaN on the plane on screen with nan_masked (the defaults were
     * measured on the raw plane and refused it), a dot inside a title (cut there), Undo
     * after an in-place run (it restored an older state), a checkbox given a value
     * (silently ignored), and a composite's one-plane result (the last channel's LUT).
     */
    static void userMends() throws Exception {
        ImagePlus nan = IJ.createImage("field 2.5um", "32-bit ramp", 64, 48, 1);
        nan.getProcessor().noise(0.1);
        nan.getProcessor().putPixelValue(5, 5, Float.NaN);
        IJ.run(nan, "Denoise...", "method=gaussian sigma=2 nan_masked");
        ImagePlus masked = WindowManager.getImage("field 2.5um-gaussian");
        boolean ok = masked != null;
        float[] px = ok ? (float[]) masked.getProcessor().getPixels() : new float[0];
        for (int i = 0; i < px.length; i++) ok &= Float.isNaN(px[i]) == (i == 5 * 64 + 5);
        System.out.println("nan-on-screen: " + ok);

        ImagePlus u = IJ.createImage("undo", "32-bit ramp", 64, 48, 1);
        u.getProcessor().noise(0.1);
        showCurrent(u, "undo window");
        IJ.run(u, "Add...", "value=5");
        float before = u.getProcessor().getf(10, 10);
        IJ.run(u, "Denoise...", "method=gaussian sigma=2 in_place");
        float denoised = u.getProcessor().getf(10, 10);
        onEdt(() -> ij.Undo.undo());
        System.out.println("undo: changed " + (denoised != before) + ", restored "
                + (u.getProcessor().getf(10, 10) == before));
        // In place with an oval selection: only the pixels inside it change.
        float[] was = (float[]) u.getProcessor().getPixelsCopy();
        u.setRoi(new ij.gui.OvalRoi(8, 6, 40, 30));
        IJ.run(u, "Denoise...", "method=gaussian sigma=2 in_place");
        ij.process.ImageProcessor inside = u.getRoi().getMask();
        int changedOut = 0, changedIn = 0;
        for (int y = 0; y < 48; y++) {
            for (int x = 0; x < 64; x++) {
                boolean in = x >= 8 && x < 48 && y >= 6 && y < 36 && inside.get(x - 8, y - 6) != 0;
                boolean changed = u.getProcessor().getf(x, y) != was[y * 64 + x];
                if (changed && in) changedIn++;
                if (changed && !in) changedOut++;
            }
        }
        System.out.println("in-place-selection: inside " + (changedIn > 500) + ", outside " + changedOut);
        u.deleteRoi();
        u.changes = false;
        u.close();

        IJ.redirectErrorMessages();
        try {
            IJ.run(nan, "Denoise...", "method=gaussian sigma=2 float_result=true");
        } catch (RuntimeException aborted) {
            // ImageJ aborts the calling "macro" after a command's error: expected here.
        }
        String log = IJ.getLog() == null ? "" : IJ.getLog();
        System.out.println("flag-with-value: " + log.contains("float_result is a checkbox"));
        for (String options : new String[] {"method=gaussian sigma=2 sigma=3", "method=gaussian =2"}) {
            // To the Log, not a modal dialog: ImageJ clears this after each error.
            IJ.redirectErrorMessages();
            try {
                IJ.run(nan, "Denoise...", options);
            } catch (RuntimeException aborted) {
                // As above.
            }
        }
        log = IJ.getLog() == null ? "" : IJ.getLog();
        System.out.println("key-twice: " + log.contains("sigma is given twice (sigma=2 and sigma=3): give it once")
                + ", no key: " + log.contains("\"=2\" in the options has no key"));

        ImagePlus three = IJ.createImage("three", "16-bit ramp", 32, 24, 3, 1, 1);
        ij.CompositeImage ci = new ij.CompositeImage(three, ij.CompositeImage.COMPOSITE);
        ci.setPosition(2, 1, 1);
        ci.getStack().setSliceLabel("the second channel", 2);
        ci.setDisplayRange(1000, 30000);
        IJ.run(ci, "Denoise...", "method=gaussian sigma=1 scope=slice");
        ImagePlus one = WindowManager.getImage("three-gaussian");
        ij.process.LUT want = ci.getChannelLut(2);
        ij.process.LUT got = one == null ? null : one.getProcessor().getLut();
        byte[] a = new byte[256], b = new byte[256];
        if (got != null) {
            want.getGreens(a);
            got.getGreens(b);
        }
        System.out.println("slice-lut: " + (got != null && Arrays.equals(a, b)) + " range "
                + (one == null ? "none" : (int) one.getDisplayRangeMin() + "-" + (int) one.getDisplayRangeMax())
                // Where ImageJ keeps a single image's label (getInfo("slice.label") reads it).
                + " label " + (one == null ? "none" : one.getProperty("Label")));
    }

    /**
     * On a 32-bit camera-like image whose variance is 2 * mean + 25 (gain 2): the camera
     * fields appear only under the Poisson-Gaussian model, Auto fits them, and the residual
     * view has its own contrast (it was a black square on 32-bit images).
     */
    static void poissonGaussianAuto() throws Exception {
        java.util.Random r = new java.util.Random(3);
        ImagePlus pg = cameraImage("pg", 2, 25, r);
        IJ.doCommand("Denoise...");
        Window panel = waitPanel("pg");
        chooseMethod(panel, "gaussian");
        waitFor(() -> find(panel, "noise_model") != null && find(panel, "noise_model").isEnabled(), "the fields");
        System.out.println("noise-line-pg: " + text(panel, "noise"));
        onEdt(() -> ((javax.swing.JComboBox<?>) find(panel, "noise_model")).setSelectedItem("gaussian"));
        Thread.sleep(200);
        boolean hiddenUnderGaussian = !find(panel, "gain").isShowing();
        onEdt(() -> ((javax.swing.JComboBox<?>) find(panel, "noise_model")).setSelectedItem("poisson_gaussian"));
        waitFor(() -> find(panel, "gain").isShowing(), "the camera fields");
        System.out.println("camera-fields: hidden under gaussian " + hiddenUnderGaussian + ", shown under poisson_gaussian");
        setText(panel, "gain", "1");
        click(panel, "Auto");
        waitFor(() -> !text(panel, "gain").equals("1") && find(panel, "Auto").isEnabled(), "the fitted gain");
        System.out.println("pg-auto: gain=" + text(panel, "gain") + " offset=" + text(panel, "offset")
                + " read_noise=" + text(panel, "read_noise"));
        // The residual view of a 32-bit image: grey around the middle, with visible spread.
        onEdt(() -> ((javax.swing.JComboBox<?>) find(panel, "view")).setSelectedIndex(2));
        Object last = shown(panel);
        setText(panel, "sigma", "3");
        waitFor(() -> shown(panel) != last, "the residual preview");
        byte[] greys = (byte[]) panel.getClass().getMethod("residualGreys").invoke(panel);
        double mean = 0, sq = 0;
        for (byte b : greys) mean += (b & 0xff);
        mean /= greys.length;
        for (byte b : greys) sq += ((b & 0xff) - mean) * ((b & 0xff) - mean);
        System.out.println(String.format("residual-contrast: mean=%.1f std=%.1f", mean, Math.sqrt(sq / greys.length)));
        Thread.sleep(300);
        hideLog();
        screenshot(new File(args1, "denoise-residual.png"), union(pg.getWindow().getBounds(), panel.getBounds()));
        // Applied under poisson_gaussian, the model is remembered: the panel opens on the next
        // image with it and the camera fitted to that image. That image's noise barely
        // depends on the signal (variance 0.2 * mean + 400), so auto would choose gaussian
        // there, and the panel opened with the model's placeholder gain of 1.
        waitFor(() -> find(panel, "Apply").isEnabled(), "the panel idle before Apply");
        click(panel, "Apply");
        ImagePlus out = waitImage("pg-gaussian");
        panel.dispose();
        out.changes = false;
        out.close();
        pg.changes = false;
        pg.close();
        ImagePlus weak = cameraImage("weak", 0.2, 400, r);
        IJ.doCommand("Denoise...");
        Window again = waitPanel("weak");
        waitFor(() -> find(again, "Apply").isEnabled(), "the fields of the panel on the next image");
        System.out.println("pg-reopened: " + ((javax.swing.JComboBox<?>) find(again, "noise_model")).getSelectedItem()
                + " gain=" + text(again, "gain") + " offset=" + text(again, "offset"));
        again.dispose();
        weak.changes = false;
        weak.close();
    }

    static File args1;

    /**
     * A 256x256 32-bit image of bands of rising level whose noise variance is
     * {@code gain * level + variance}, shown as the current image.
     */
    static ImagePlus cameraImage(String title, double gain, double variance, java.util.Random r) throws Exception {
        int w = 256, h = 256;
        ImagePlus imp = IJ.createImage(title, "32-bit black", w, h, 1);
        float[] px = (float[]) imp.getProcessor().getPixels();
        for (int y = 0; y < h; y++) {
            double level = 100 + 60 * (y / 16);
            for (int x = 0; x < w; x++) px[y * w + x] = (float) (level + Math.sqrt(gain * level + variance) * r.nextGaussian());
        }
        imp.resetDisplayRange();
        showCurrent(imp, title + " window");
        return imp;
    }

    /** Suggest selects the denoiser the ranking expects best, with its tuned values. */
    /**
     * The learned method trains on the selection when previewed: the view shows what its
     * current weights make of it while it trains, and the progress line gives the loss.
     */
    static void learnedPreview(Window panel) throws Exception {
        long before = interimsShown(panel);
        chooseMethod(panel, "zs_n2n");
        final String[] note = {""};
        waitFor(() -> {
            String t = text(panel, "progress-text");
            if (t.contains("training step")) note[0] = t;
            return interimsShown(panel) > before && !note[0].isEmpty();
        }, "zs_n2n's intermediate preview and loss");
        stablePreview(panel);
        System.out.println("learned-interims: " + (interimsShown(panel) - before));
        System.out.println("learned-note: " + note[0]);
    }

    static long interimsShown(Window panel) throws Exception {
        return (Long) panel.getClass().getMethod("interimsShown").invoke(panel);
    }

    static void suggestMethod(Window panel) throws Exception {
        chooseMethod(panel, "median");
        click(panel, "Suggest a method");
        waitFor(() -> text(panel, "strength").contains("Suggest ranked"), "the suggestion");
        System.out.println("suggest: " + selectedMethod(panel));
        onEdt(panel::dispose);
    }

    /**
     * An RGB image: the panel offers a 3-channel copy and opens on it; the original stays
     * RGB and untouched. From a macro, the error gives the lines that make the copy.
     */
    static void rgbWayForward() throws Exception {
        ImagePlus rgb = IJ.createImage("rgb", "RGB ramp", 64, 48, 1);
        int[] before = ((int[]) rgb.getProcessor().getPixelsCopy());
        showCurrent(rgb, "rgb window");
        IJ.doCommand("Denoise...");
        final java.awt.Dialog[] offer = new java.awt.Dialog[1];
        waitFor(() -> {
            for (Window w : Window.getWindows()) {
                if (w instanceof ij.gui.YesNoCancelDialog && w.isShowing()) offer[0] = (java.awt.Dialog) w;
            }
            return offer[0] != null;
        }, "the RGB offer");
        waitFor(GuiHarness::inModalWait, "the offer waiting for an answer");
        java.awt.Button yes = null;
        for (java.awt.Component c : offer[0].getComponents()) yes = yes != null ? yes : button(c, "Make a copy");
        final java.awt.Button press = yes;
        onEdt(() -> ((java.awt.event.ActionListener) offer[0]).actionPerformed(
                new java.awt.event.ActionEvent(press, java.awt.event.ActionEvent.ACTION_PERFORMED, "Make a copy")));
        Window panel = waitPanel("rgb-channels");
        ImagePlus copy = WindowManager.getImage("rgb-channels");
        boolean same = Arrays.equals(before, (int[]) rgb.getProcessor().getPixels());
        System.out.println("rgb-copy: " + copy.getNChannels() + " channels, " + copy.getBitDepth()
                + "-bit; original unchanged " + same);
        onEdt(panel::dispose);
        IJ.redirectErrorMessages();
        try {
            IJ.run(rgb, "Denoise...", "method=gaussian sigma=1");
        } catch (RuntimeException aborted) {
            // The macro is aborted after the error: expected.
        }
        String log = IJ.getLog() == null ? "" : IJ.getLog();
        System.out.println("rgb-macro: " + (log.contains("is RGB") && log.contains("Make Composite")));
        rgb.changes = false;
        rgb.close();
        copy.changes = false;
        copy.close();
    }

    static java.awt.Button button(java.awt.Component c, String label) {
        if (c instanceof java.awt.Button && label.equals(((java.awt.Button) c).getLabel())) return (java.awt.Button) c;
        if (c instanceof java.awt.Container) {
            for (java.awt.Component inner : ((java.awt.Container) c).getComponents()) {
                java.awt.Button b = button(inner, label);
                if (b != null) return b;
            }
        }
        return null;
    }

    /**
     * Whether a thread is blocked in a modal Dialog.show(). A dialog hidden before its
     * show() reaches that wait is never noticed, and show() waits forever (seen 3 times in
     * about 80 runs with the former modal dialogs). A person's click cannot come that
     * early; the harness's could. If a JDK renames these frames, the wait times out with
     * the stacks printed rather than passing silently.
     */
    static boolean inModalWait() {
        for (StackTraceElement[] stack : Thread.getAllStackTraces().values()) {
            boolean waiting = false;
            for (StackTraceElement f : stack) {
                if (f.getClassName().equals("java.awt.WaitDispatchSupport") && f.getMethodName().equals("enter")) waiting = true;
                if (waiting && f.getClassName().equals("java.awt.Dialog") && f.getMethodName().equals("show")) return true;
            }
        }
        return false;
    }

    /** The Log opens over the panel: out of the way for a screenshot. */
    static void hideLog() throws Exception {
        java.awt.Window log = WindowManager.getWindow("Log");
        if (log != null) onEdt(() -> log.setVisible(false));
        Thread.sleep(200);
    }

    /** A click on the bm3d tile of Compare Methods opens the panel on bm3d. */
    static void compareClick(ImagePlus montage, Window panel) throws Exception {
        java.util.List<String> ids = new java.util.ArrayList<String>();
        Class<?> bridge = Class.forName("org.denoisekit.NativeBridge", true, IJ.getClassLoader());
        for (Object m : (java.util.List<?>) bridge.getMethod("methods").invoke(null)) {
            if ("denoise".equals(m.getClass().getField("kind").get(m))) ids.add((String) m.getClass().getField("id").get(m));
        }
        int tile = montage.getWidth() / (ids.size() + 1);
        int x = tile * (ids.indexOf("bm3d") + 1) + tile / 2;
        ij.gui.ImageCanvas canvas = montage.getCanvas();
        double mag = canvas.getMagnification();
        java.awt.event.MouseEvent click = new java.awt.event.MouseEvent(canvas, java.awt.event.MouseEvent.MOUSE_CLICKED,
                System.currentTimeMillis(), 0, (int) ((x - canvas.getSrcRect().x) * mag), 20, 1, false);
        onEdt(() -> {
            for (java.awt.event.MouseListener l : canvas.getMouseListeners()) l.mouseClicked(click);
        });
        waitFor(() -> "bm3d".equals(selectedMethod(panel)), "the panel on bm3d");
        waitFor(() -> find(panel, "Apply").isEnabled(), "bm3d's fields");
        System.out.println("compare-click: " + selectedMethod(panel));
    }

    /**
     * The preview's latency, from a change of the strength to new pixels handed to the
     * view, for a 256x256 selection with the fast methods (a benchmark: printed, never
     * asserted).
     */
    static void latency(File out) throws Exception {
        ImagePlus big = IJ.createImage("latency", "32-bit black", 512, 512, 1);
        float[] px = (float[]) big.getProcessor().getPixels();
        java.util.Random r = new java.util.Random(5);
        for (int i = 0; i < px.length; i++) px[i] = (float) (100 + 50 * Math.sin(i % 512 / 20.0) + 10 * r.nextGaussian());
        big.resetDisplayRange();
        showCurrent(big, "latency window");
        big.setRoi(new Rectangle(128, 128, 256, 256));
        IJ.doCommand("Denoise...");
        Window panel = waitPanel("latency");
        String[][] cases = {{"gaussian", "sigma", "1.5", "2"}, {"median", "radius", "1", "2"},
                {"bilateral", "sigma_range", "20", "30"}, {"anisotropic_diffusion", "kappa", "15", "20"}};
        for (String[] c : cases) {
            chooseMethod(panel, c[0]);
            waitFor(() -> find(panel, "Apply").isEnabled() && find(panel, c[1]) != null, c[0] + " fields");
            Thread.sleep(500);
            double[] ms = new double[15];
            for (int i = 0; i < ms.length; i++) {
                Object last = shown(panel);
                setText(panel, c[1], c[2 + i % 2]);
                waitFor(() -> shown(panel) != last, "a preview");
                ms[i] = panel_latency(panel);
            }
            Arrays.sort(ms);
            System.out.println(String.format("preview-latency: %s median %.1f ms, p90 %.1f ms (n=%d, 256x256)", c[0],
                    ms[ms.length / 2], ms[(int) (ms.length * 0.9)], ms.length));
        }
        // A peer in the same run: ImageJ's own filters on the same region, compute only
        // (no window, no halo, no repaint), as its preview of Gaussian Blur... would run them.
        ij.process.ImageProcessor crop = big.getProcessor().crop();
        String[] peers = {"gaussian blur sigma 2", "median radius 1"};
        for (String peer : peers) {
            double[] ms = new double[15];
            for (int i = 0; i < ms.length; i++) {
                ij.process.ImageProcessor ip = crop.duplicate();
                long t0 = System.nanoTime();
                if (peer.startsWith("gaussian")) new ij.plugin.filter.GaussianBlur().blurGaussian(ip, 2, 2, 0.002);
                else new ij.plugin.filter.RankFilters().rank(ip, 1, ij.plugin.filter.RankFilters.MEDIAN);
                ms[i] = (System.nanoTime() - t0) / 1e6;
            }
            Arrays.sort(ms);
            System.out.println(String.format("preview-peer: ImageJ %s median %.1f ms (n=%d, 256x256, compute only)", peer,
                    ms[ms.length / 2], ms.length));
        }
        panel.dispose();
        big.changes = false;
        big.close();
    }

    static double panel_latency(Window panel) throws Exception {
        Object s = shown(panel);
        return s.getClass().getField("latencyMs").getDouble(s);
    }

    /**
     * A 3D job shows progress as it runs (the bar moves), and Stop cancels the next one
     * without a result.
     */
    static void progressOnAStack() throws Exception {
        ImagePlus st = IJ.createImage("stack", "32-bit black", 192, 192, 24);
        java.util.Random r = new java.util.Random(7);
        for (int z = 1; z <= 24; z++) {
            float[] px = (float[]) st.getStack().getPixels(z);
            for (int i = 0; i < px.length; i++) px[i] = (float) (100 + 40 * Math.cos(i / 700.0 + z) + 8 * r.nextGaussian());
        }
        st.resetDisplayRange();
        showCurrent(st, "stack window");
        IJ.doCommand("Denoise...");
        Window panel = waitPanel("stack");
        chooseMethod(panel, "nl_means");
        waitFor(() -> find(panel, "Apply").isEnabled(), "nl_means fields");
        System.out.println("z-fields-on-3d: " + (find(panel, "search_radius_z").isShowing() ? "shown" : "hidden"));
        setText(panel, "search_radius_z", "2");
        setText(panel, "patch_radius_z", "1");
        onEdt(() -> ((javax.swing.JCheckBox) find(panel, "Preview")).setSelected(false));
        click(panel, "Apply");
        javax.swing.JProgressBar bar = (javax.swing.JProgressBar) find(panel, "progress");
        java.util.Set<Integer> seen = new java.util.TreeSet<Integer>();
        String eta = "";
        long end = System.currentTimeMillis() + TIMEOUT_MS;
        while (WindowManager.getImage("stack-nl_means") == null && System.currentTimeMillis() < end) {
            if (!bar.isIndeterminate() && bar.getValue() > 0 && bar.getValue() < 1000) seen.add(bar.getValue());
            String t = text(panel, "progress-text");
            if (t.contains("%")) eta = t;
            Thread.sleep(20);
        }
        waitImage("stack-nl_means");
        System.out.println("progress-3d: " + seen.size() + " values between 0 and 100%; last text: " + eta);
        // Stop: the same job again, cancelled once it reports progress. A wider search
        // makes it several times longer than the one above (which reports progress only
        // a few times), so that it is still running when Stop is clicked on a busy machine.
        waitFor(() -> find(panel, "Apply").isEnabled(), "the panel idle again");
        setText(panel, "search_radius", "15");
        click(panel, "Apply");
        waitFor(() -> bar.getValue() > 0 && !bar.isIndeterminate(), "progress to stop");
        click(panel, "Stop");
        waitFor(() -> text(panel, "progress-text").contains("stopped"), "the stop");
        System.out.println("stop: " + text(panel, "progress-text") + "; images named stack-nl_means: "
                + countImages("stack-nl_means"));
        // Esc stops a job as Stop does, and only that one: ImageJ keeps Esc pressed until
        // a menu command starts, and every later Apply stopped at once.
        waitFor(() -> find(panel, "Apply").isEnabled(), "the panel idle after the stop");
        click(panel, "Apply");
        waitFor(() -> bar.getValue() > 0 && !bar.isIndeterminate()
                && !text(panel, "progress-text").contains("stopped"), "progress to stop with Esc");
        IJ.setKeyDown(java.awt.event.KeyEvent.VK_ESCAPE);
        waitFor(() -> text(panel, "progress-text").contains("stopped"), "the stop by Esc");
        waitFor(() -> find(panel, "Apply").isEnabled(), "the panel idle after Esc");
        setText(panel, "search_radius_z", "0");
        setText(panel, "patch_radius_z", "0");
        setText(panel, "search_radius", "6");
        click(panel, "Apply");
        waitFor(() -> countImages("stack-nl_means") == 2, "a result after Esc");
        System.out.println("after-esc: " + countImages("stack-nl_means"));
        // A method chosen while a job runs queues its loading behind the job: Stop still
        // stops the job, and the panel is idle once the loading ran.
        setText(panel, "search_radius_z", "2");
        setText(panel, "patch_radius_z", "1");
        setText(panel, "search_radius", "15");
        click(panel, "Apply");
        waitFor(() -> bar.getValue() > 0 && !bar.isIndeterminate(), "progress before choosing another method");
        selectMethod(panel, "gaussian");
        click(panel, "Stop");
        waitFor(() -> find(panel, "Apply").isEnabled(), "the panel idle after a stop with a method queued");
        System.out.println("stop-with-queued: " + countImages("stack-nl_means") + "; "
                + text(panel, "progress-text").trim() + "; sigma shown: " + find(panel, "sigma").isShowing());
        panel.dispose();
    }

    /**
     * Shows {@code imp} and waits until it is ImageJ's current image, as a click on its
     * window makes it: a window shown just before may still be activated after it (its
     * activation event queued late), and a command would then run on that one.
     */
    static void showCurrent(ImagePlus imp, String what) throws Exception {
        imp.show();
        waitFor(() -> imp.getWindow() != null && imp.getWindow().isShowing(), what);
        // Let the activations already queued happen first.
        onEdt(() -> {
        });
        waitFor(() -> {
            if (WindowManager.getCurrentImage() != imp) IJ.selectWindow(imp.getID());
            return WindowManager.getCurrentImage() == imp;
        }, what + " as the current image");
    }

    static int countImages(String title) {
        int n = 0;
        for (int id : WindowManager.getIDList()) {
            if (title.equals(WindowManager.getImage(id).getTitle())) n++;
        }
        return n;
    }

    // ---- the panel, as a person sees it (the harness is compiled without the plugin) ----

    static Window waitPanel(String imageTitle) throws Exception {
        final Window[] found = new Window[1];
        waitFor(() -> {
            for (Window w : Window.getWindows()) {
                if (w instanceof javax.swing.JFrame && w.isShowing()
                        && ("DenoiseKit - " + imageTitle).equals(((javax.swing.JFrame) w).getTitle())) {
                    found[0] = w;
                    return true;
                }
            }
            return false;
        }, "the panel on " + imageTitle);
        return found[0];
    }

    /** The component named {@code name} (or a button with that text), or null. */
    static java.awt.Component find(java.awt.Container in, String name) {
        for (java.awt.Component c : in.getComponents()) {
            if (name.equals(c.getName())) return c;
            if (c instanceof javax.swing.AbstractButton && name.equals(((javax.swing.AbstractButton) c).getText())) return c;
            if (c instanceof java.awt.Container) {
                java.awt.Component inner = find((java.awt.Container) c, name);
                if (inner != null) return inner;
            }
        }
        return null;
    }

    /** A label's or field's text, HTML line breaks as spaces. */
    static String text(java.awt.Container in, String name) throws Exception {
        final String[] out = new String[1];
        onEdt(() -> {
            java.awt.Component c = find(in, name);
            String t = c instanceof javax.swing.JLabel ? ((javax.swing.JLabel) c).getText()
                    : c instanceof javax.swing.text.JTextComponent ? ((javax.swing.text.JTextComponent) c).getText() : "";
            out[0] = t == null ? "" : t.replace("<br>", " ").replaceAll("<[^>]+>", "").trim();
        });
        return out[0];
    }

    static void setText(java.awt.Container in, String name, String value) throws Exception {
        onEdt(() -> ((javax.swing.text.JTextComponent) find(in, name)).setText(value));
    }

    static void click(java.awt.Container in, String label) throws Exception {
        onEdt(() -> ((javax.swing.AbstractButton) find(in, label)).doClick(0));
    }

    static void chooseMethod(Window panel, String id) throws Exception {
        selectMethod(panel, id);
        waitFor(() -> find(panel, "Apply").isEnabled(), "method " + id + " loaded");
    }

    /** Clicks method {@code id} in the list, without waiting for its fields to load. */
    static void selectMethod(Window panel, String id) throws Exception {
        onEdt(() -> {
            javax.swing.JList<?> list = (javax.swing.JList<?>) find(panel, "methods");
            for (int i = 0; i < list.getModel().getSize(); i++) {
                Object v = list.getModel().getElementAt(i);
                if (!(v instanceof String) && id.equals(idOf(v))) list.setSelectedIndex(i);
            }
        });
        waitFor(() -> id.equals(selectedMethod(panel)), "method " + id);
    }

    static String idOf(Object methodSpec) {
        try {
            return (String) methodSpec.getClass().getField("id").get(methodSpec);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

    static String selectedMethod(Window panel) throws Exception {
        final String[] out = new String[1];
        onEdt(() -> {
            Object v = ((javax.swing.JList<?>) find(panel, "methods")).getSelectedValue();
            out[0] = v == null || v instanceof String ? null : idOf(v);
        });
        return out[0];
    }

    static Object shown(Window panel) throws Exception {
        return panel.getClass().getMethod("shown").invoke(panel);
    }

    /** The preview's pixels once no newer preview came for 1.5 s. */
    static float[] stablePreview(Window panel) throws Exception {
        final Object[] last = {shown(panel)};
        final long[] since = {System.currentTimeMillis()};
        waitFor(() -> {
            Object now = shown(panel);
            if (now != last[0]) {
                last[0] = now;
                since[0] = System.currentTimeMillis();
            }
            return System.currentTimeMillis() - since[0] > 1500;
        }, "a stable preview");
        return (float[]) last[0].getClass().getField("pixels").get(last[0]);
    }

    /** Every label's text in a window, for a timeout's report. */
    static void labels(java.awt.Container in) {
        for (java.awt.Component c : in.getComponents()) {
            if (c instanceof javax.swing.JLabel) System.out.println("  label " + c.getName() + ": " + ((javax.swing.JLabel) c).getText());
            if (c instanceof java.awt.Container) labels((java.awt.Container) c);
        }
    }

    static void onEdt(Runnable r) throws Exception {
        if (javax.swing.SwingUtilities.isEventDispatchThread()) r.run();
        else javax.swing.SwingUtilities.invokeAndWait(r);
    }





    interface Check {
        boolean ok() throws Exception;
    }

    static void waitFor(Check c, String what) throws Exception {
        long end = System.currentTimeMillis() + TIMEOUT_MS;
        while (!c.ok()) {
            if (System.currentTimeMillis() > end) {
                System.out.println("timeout waiting for " + what);
                describeState();
                System.exit(2);
            }
            Thread.sleep(50);
        }
    }


    static ImagePlus waitImage(final String title) throws Exception {
        waitFor(() -> WindowManager.getImage(title) != null && WindowManager.getImage(title).getWindow() != null,
                "image " + title);
        return WindowManager.getImage(title);
    }




    /**
     * Whatever step hangs, prints the windows and every thread's stack before the test's
     * own 300 s limit.
     */
    static void watchdog() {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(2 * TIMEOUT_MS);
            } catch (InterruptedException e) {
                return;
            }
            System.out.println("watchdog: the harness ran for " + 2 * TIMEOUT_MS / 1000 + " s");
            describeState();
            System.exit(3);
        }, "gui-harness-watchdog");
        t.setDaemon(true);
        t.start();
    }

    /** On a timeout: the windows on screen and every thread's stack, to tell a hang from a slow step. */
    static void describeState() {
        for (Window w : Window.getWindows()) {
            if (w instanceof javax.swing.JFrame && w.isShowing()) labels(w);
            String title = w instanceof java.awt.Dialog ? ((java.awt.Dialog) w).getTitle()
                    : w instanceof java.awt.Frame ? ((java.awt.Frame) w).getTitle() : "";
            System.out.println("window: " + w.getClass().getName() + " \"" + title + "\" showing=" + w.isShowing());
        }
        for (java.util.Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
            System.out.println("thread \"" + e.getKey().getName() + "\" " + e.getKey().getState());
            for (StackTraceElement f : e.getValue()) System.out.println("    at " + f);
        }
    }


    static float[] roiPixels(ImagePlus imp, Rectangle r) {
        float[] px = new float[r.width * r.height];
        for (int y = 0; y < r.height; y++) {
            for (int x = 0; x < r.width; x++) px[y * r.width + x] = imp.getProcessor().getPixelValue(r.x + x, r.y + y);
        }
        return px;
    }

    static float[] allPixels(ImagePlus imp) {
        return roiPixels(imp, new Rectangle(0, 0, imp.getWidth(), imp.getHeight()));
    }

    static Rectangle union(Rectangle a, Rectangle b) {
        Rectangle u = a.union(b);
        u.grow(4, 4);
        return u.intersection(new Rectangle(java.awt.Toolkit.getDefaultToolkit().getScreenSize()));
    }

    static void screenshot(File f, Rectangle r) throws Exception {
        ImageIO.write(new Robot().createScreenCapture(r), "png", f);
    }
}
