package org.denoisekit.gui;

import ij.IJ;
import ij.ImageJ;
import ij.ImagePlus;
import ij.WindowManager;
import ij.gui.GenericDialog;
import ij.plugin.frame.Recorder;
import java.awt.Button;
import java.awt.Checkbox;
import java.awt.Choice;
import java.awt.Rectangle;
import java.awt.Robot;
import java.awt.TextField;
import java.awt.Window;
import java.awt.event.ActionEvent;
import java.awt.event.ItemEvent;
import java.io.File;
import java.util.Arrays;
import javax.imageio.ImageIO;

/**
 * Drives the real ImageJ user interface the way a person does (menus, dialogs, preview
 * checkbox, OK button, the macro recorder), under Xvfb, and prints what it observed:
 *
 * <pre>
 * recorded: run("Denoise...", "...")    the line ImageJ's recorder wrote
 * preview-equals-final: true|false      preview pixels on the selection vs the final result
 * replay-identical: true|false          the recorded line replayed vs the interactive result
 * montage: WxH                          Compare Methods output size
 * compare-best: ID                      the denoiser Compare Methods (tuned) expects best
 * suggest: ID                           the denoiser the first dialog's Suggest selected
 * noise-line: TEXT                      the dialog's noise readout, with the correlation
 * noise-line-pg: TEXT                   the same on an unclipped image of white noise
 * pg-auto: gain=G offset=O read_noise=R  the Auto button's camera fit (Poisson-Gaussian model)
 * </pre>
 *
 * Screenshots of the dialog with its preview and the Compare Methods montage go to the
 * output folder. Arguments: image.tif output-folder.
 */
public class GuiHarness {
    // Generous: a loaded 2-core machine once took over a minute for one step.
    static final long TIMEOUT_MS = 120000;

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
        new ImageJ(ImageJ.NO_SHOW);
        ImagePlus imp = IJ.openImage(image);
        imp.show();
        waitFor(() -> imp.getWindow() != null && imp.getWindow().isShowing(), "image window");
        imp.getWindow().setLocation(10, 10);
        Rectangle roi = new Rectangle(96, 72, 64, 48);
        imp.setRoi(roi);
        Recorder recorder = new Recorder();
        Recorder.record = true;

        IJ.doCommand("Denoise...");
        GenericDialog d1 = waitDialog("Denoise");
        choose(d1, "nl_means");
        press(d1, "OK");
        GenericDialog d2 = waitDialog("Denoise: Non-local means");
        d2.setLocation(imp.getWindow().getX() + imp.getWindow().getWidth() + 10, 10);
        ((TextField) d2.getNumericFields().get(0)).setText("60");
        float[] before = roiPixels(imp, roi);
        Checkbox preview = d2.getPreviewCheckbox();
        preview.setState(true);
        d2.itemStateChanged(new ItemEvent(preview, ItemEvent.ITEM_STATE_CHANGED, preview, ItemEvent.SELECTED));
        float[] previewed = waitForStablePreview(imp, roi, before);
        // The dialog says what strength it opened at, and shows the preview's residual check.
        waitFor(() -> labelStarting(d2, "Residual check: ") != null
                && !labelStarting(d2, "Residual check: ").contains("shown with the preview"), "the residual check");
        System.out.println("residual-line: " + labelStarting(d2, "Residual check: ").replace('\n', ' '));
        String info = labelStarting(d2, "Estimated noise sigma");
        System.out.println("noise-line: " + info.replace('\n', ' '));
        System.out.println("strength-line: " + info.substring(info.indexOf("Strength: ")).replace('\n', ' '));
        Thread.sleep(300);
        screenshot(new File(out, "denoise-dialog.png"), union(imp.getWindow().getBounds(), d2.getBounds()));
        press(d2, "OK");
        ImagePlus result = waitImage(imp.getShortTitle() + "-nl_means");
        System.out.println("preview-equals-final: " + Arrays.equals(previewed, roiPixels(result, roi)));

        // The recorder writes the command's line once the command has returned.
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

        imp.setRoi(new Rectangle(40, 36, 176, 128));
        IJ.run(imp, "Compare Methods...", "backend=cpu residuals tuned");
        ImagePlus montage = WindowManager.getCurrentImage();
        System.out.println("montage: " + montage.getWidth() + "x" + montage.getHeight());
        // Tuned, each denoiser's loss is logged and the expected best named.
        for (String line : IJ.getLog().split("\n")) {
            if (line.contains("expected best by the self-supervised loss: ")) {
                System.out.println("compare-best: " + line.substring(line.indexOf(": ") + 2));
            }
            if (line.trim().startsWith("bm3d ") && line.contains(" loss ")) System.out.println("compare-bm3d-loss: yes");
        }
        IJ.saveAs(montage, "PNG", new File(out, "compare-methods.png").getPath());
        inPlaceFailure();
        poissonGaussianAuto();
        suggestMethod(imp);
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
    }

    /**
     * The noise-estimate Auto button with the Poisson-Gaussian model selected, on a
     * camera-like image whose variance is 2 * mean + 25 (gain 2): the button fits the
     * camera from the image and fills gain, offset and read noise, the last three number
     * fields (the noise model's parameters follow the method's own).
     */
    static void poissonGaussianAuto() throws Exception {
        int w = 256, h = 256;
        ImagePlus pg = IJ.createImage("pg", "32-bit black", w, h, 1);
        float[] px = (float[]) pg.getProcessor().getPixels();
        java.util.Random r = new java.util.Random(3);
        for (int y = 0; y < h; y++) {
            double mean = 100 + 60 * (y / 16);
            for (int x = 0; x < w; x++) px[y * w + x] = (float) (mean + Math.sqrt(2 * mean + 25) * r.nextGaussian());
        }
        pg.show();
        waitFor(() -> pg.getWindow() != null && pg.getWindow().isShowing(), "pg window");
        IJ.doCommand("Denoise...");
        GenericDialog d1 = waitDialog("Denoise");
        choose(d1, "gaussian");
        press(d1, "OK");
        GenericDialog d2 = waitDialogStarting("Denoise: ");
        for (Object o : d2.getChoices()) {
            Choice c = (Choice) o;
            for (int i = 0; i < c.getItemCount(); i++) {
                if ("poisson_gaussian".equals(c.getItem(i))) c.select(i);
            }
        }
        java.util.Vector<?> numbers = d2.getNumericFields();
        TextField gain = (TextField) numbers.get(numbers.size() - 3);
        // With noise_model=auto the default, the dialog may open with the fitted gain
        // already in place: start from a value the fit will not give.
        gain.setText("1");
        String before = gain.getText();
        System.out.println("noise-line-pg: " + labelStarting(d2, "Estimated noise sigma").replace('\n', ' '));
        click(d2, "Auto");
        waitFor(() -> !gain.getText().equals(before), "the fitted gain");
        System.out.println("pg-auto: gain=" + gain.getText()
                + " offset=" + ((TextField) numbers.get(numbers.size() - 2)).getText()
                + " read_noise=" + ((TextField) numbers.get(numbers.size() - 1)).getText());
        press(d2, "Cancel");
        pg.changes = false;
        pg.close();
    }

    /** The first dialog's Suggest button selects the denoiser the ranking expects best. */
    static void suggestMethod(ImagePlus imp) throws Exception {
        imp.deleteRoi();
        IJ.selectWindow(imp.getID());
        IJ.doCommand("Denoise...");
        GenericDialog d1 = waitDialog("Denoise");
        choose(d1, "median");
        click(d1, "Suggest a method");
        System.out.println("suggest: " + ((Choice) d1.getChoices().get(0)).getSelectedItem());
        press(d1, "Cancel");
    }

    /** A MultiLineLabel's lines (it has no getter: read its field). */
    static String multiLineText(ij.gui.MultiLineLabel label) {
        try {
            java.lang.reflect.Field f = ij.gui.MultiLineLabel.class.getDeclaredField("lines");
            f.setAccessible(true);
            return String.join("\n", (String[]) f.get(label));
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read a MultiLineLabel", e);
        }
    }

    /** The text of the first label in {@code in} that starts with {@code prefix}, or null. */
    static String labelStarting(java.awt.Container in, String prefix) {
        for (java.awt.Component c : in.getComponents()) {
            String text = null;
            if (c instanceof ij.gui.MultiLineLabel) text = multiLineText((ij.gui.MultiLineLabel) c);
            else if (c instanceof java.awt.Label) text = ((java.awt.Label) c).getText();
            if (text != null && text.startsWith(prefix)) return text;
            if (c instanceof java.awt.Container) {
                String inner = labelStarting((java.awt.Container) c, prefix);
                if (inner != null) return inner;
            }
        }
        return null;
    }

    /** Runs the listeners of the dialog's button labelled {@code label} (one of its own). */
    static void click(java.awt.Container in, String label) {
        for (java.awt.Component c : in.getComponents()) {
            if (c instanceof Button && label.equals(((Button) c).getLabel())) {
                for (java.awt.event.ActionListener l : ((Button) c).getActionListeners()) {
                    l.actionPerformed(new ActionEvent(c, ActionEvent.ACTION_PERFORMED, label));
                }
                return;
            }
            if (c instanceof java.awt.Container) {
                try {
                    click((java.awt.Container) c, label);
                    return;
                } catch (IllegalStateException notHere) {
                    // keep looking
                }
            }
        }
        throw new IllegalStateException("no button " + label);
    }

    static GenericDialog waitDialogStarting(final String prefix) throws Exception {
        final GenericDialog[] found = new GenericDialog[1];
        waitFor(() -> {
            for (Window w : Window.getWindows()) {
                if (w instanceof GenericDialog && w.isShowing() && ((GenericDialog) w).getTitle().startsWith(prefix)) {
                    found[0] = (GenericDialog) w;
                    return true;
                }
            }
            return false;
        }, "dialog " + prefix);
        return found[0];
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

    static GenericDialog waitDialog(final String title) throws Exception {
        final GenericDialog[] found = new GenericDialog[1];
        waitFor(() -> {
            for (Window w : Window.getWindows()) {
                if (w instanceof GenericDialog && w.isShowing() && title.equals(((GenericDialog) w).getTitle())) {
                    found[0] = (GenericDialog) w;
                    return true;
                }
            }
            return false;
        }, "dialog " + title);
        return found[0];
    }

    static ImagePlus waitImage(final String title) throws Exception {
        waitFor(() -> WindowManager.getImage(title) != null && WindowManager.getImage(title).getWindow() != null,
                "image " + title);
        return WindowManager.getImage(title);
    }

    static void press(GenericDialog gd, String label) throws Exception {
        waitFor(GuiHarness::inModalWait, "the plugin waiting in its dialog");
        for (Button b : gd.getButtons()) {
            if (b != null && label.equals(b.getLabel().trim())) {
                gd.actionPerformed(new ActionEvent(b, ActionEvent.ACTION_PERFORMED, label));
                return;
            }
        }
        throw new IllegalStateException("no button " + label);
    }

    /**
     * Whether a thread is blocked in a modal Dialog.show(). A dialog hidden before its
     * show() reaches that wait is never noticed, and show() waits forever: caught by
     * describeState with the plugin thread in WaitDispatchSupport.enter under the
     * disposed "Denoise" dialog and the event thread idle (3 times in about 80 runs of the
     * imagej tests, one of them under added CPU load). A person's click cannot come that
     * early; the harness's could. If a JDK renames these frames, press() times out with
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

    static void choose(GenericDialog gd, String item) {
        Choice c = (Choice) gd.getChoices().get(0);
        c.select(item);
        if (!item.equals(c.getSelectedItem())) {
            throw new IllegalStateException("selected " + c.getSelectedItem() + ", not " + item);
        }
    }

    /**
     * Whatever step hangs, prints the windows and every thread's stack before the test's
     * own 300 s limit (see inModalWait for the hang this found).
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
            String title = w instanceof java.awt.Dialog ? ((java.awt.Dialog) w).getTitle()
                    : w instanceof java.awt.Frame ? ((java.awt.Frame) w).getTitle() : "";
            System.out.println("window: " + w.getClass().getName() + " \"" + title + "\" showing=" + w.isShowing());
        }
        for (java.util.Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
            System.out.println("thread \"" + e.getKey().getName() + "\" " + e.getKey().getState());
            for (StackTraceElement f : e.getValue()) System.out.println("    at " + f);
        }
    }

    /** Waits until the selection's pixels changed from {@code before} and stayed put. */
    static float[] waitForStablePreview(ImagePlus imp, Rectangle r, float[] before) throws Exception {
        final float[][] last = {roiPixels(imp, r)};
        final long[] since = {System.currentTimeMillis()};
        waitFor(() -> {
            float[] now = roiPixels(imp, r);
            if (!Arrays.equals(now, last[0])) {
                last[0] = now;
                since[0] = System.currentTimeMillis();
            }
            return !Arrays.equals(now, before) && System.currentTimeMillis() - since[0] > 1500;
        }, "preview");
        return last[0];
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
