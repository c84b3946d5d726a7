package org.denoisekit.ij;

import ij.ImagePlus;
import ij.WindowManager;
import ij.measure.Calibration;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.denoisekit.DenoiseKitException;
import org.denoisekit.Images;
import org.denoisekit.MethodSpec;

/**
 * The open images a job takes besides its own (a measured PSF, a clean target), checked
 * against the job's image once, then read for each channel and position the job runs on:
 * an image with one channel serves every channel, one with as many channels as the job's
 * image gives each channel its own (a PSF per wavelength, a target per channel), and the
 * same for time points (or slices, when the job runs along frames).
 */
final class ImageInputs {
    private final ImagePlus imp;
    private final Pixels.Axis axis;
    private final List<String> keys = new ArrayList<String>();
    private final List<ImagePlus> sources = new ArrayList<ImagePlus>();
    /**
     * Per input, its copies by channel where a job asks for the same one again: an input
     * of one position on an image of several (a PSF serving every frame of a time-lapse
     * is read once per channel, not once per frame), or of one channel serving several.
     * Other inputs are read where they are used, each copy once by a job, so that a
     * large target is not held whole as floats.
     */
    private final List<Map<Integer, Pixels>> shared = new ArrayList<Map<Integer, Pixels>>();

    private ImageInputs(ImagePlus imp, Pixels.Axis axis) {
        this.imp = imp;
        this.axis = axis;
    }

    /**
     * The images {@code titles} name for {@code m}'s image inputs, in order ({@link
     * DenoiseJob#NONE} or null: none), for a job on {@code imp} along {@code axis}. An
     * image named for an input whose switch is off is dropped where {@code unchosen} is
     * false (the panel keeps a list's title while its switch is off), and otherwise passed
     * as it is, unchecked, for the library to refuse for that (a macro's mistake).
     *
     * @throws DenoiseKitException naming the input when a chosen one is missing, not open,
     *     RGB, of another channel or time count than {@code imp}, or of another pixel size
     */
    static ImageInputs of(ImagePlus imp, Pixels.Axis axis, MethodSpec m, String[] keys, String[] values,
            String[] titles, boolean unchosen) {
        ImageInputs out = new ImageInputs(imp, axis);
        for (int i = 0; i < titles.length; i++) {
            MethodSpec.ImageInput in = m.images.get(i);
            boolean chosen = in.chosenBy(keys, values);
            String title = chosen || unchosen ? titles[i] : null;
            if (title == null || DenoiseJob.NONE.equals(title)) {
                if (chosen) {
                    throw new DenoiseKitException("InvalidInput", in.whenKey + "=" + in.whenValue + " needs an image as "
                            + in.key + " (" + in.label + "): open it and choose it, or name it as " + in.key
                            + "=[title]");
                }
                continue;
            }
            String named = in.key + "=[" + title + "]";
            ImagePlus src = WindowManager.getImage(title);
            if (src == null) throw new DenoiseKitException("InvalidInput", named + ": no open image has that title");
            if (src.getBitDepth() == 24) {
                throw new DenoiseKitException("InvalidInput", named + " is RGB; it must be a grey image "
                        + "(Image > Type > 32-bit)");
            }
            if (chosen) {
                matches(named, "channels", src.getNChannels(), imp.getNChannels());
                matches(named, along(axis), axis.otherLength(src), axis.otherLength(imp));
                samePixels(named, src.getCalibration(), imp.getCalibration(),
                        axis == Pixels.Axis.SLICES && src.getNSlices() > 1 && imp.getNSlices() > 1);
            }
            out.keys.add(in.key);
            out.sources.add(src);
            boolean reused = axis.otherLength(src) == 1
                    && (axis.otherLength(imp) > 1 || src.getNChannels() < imp.getNChannels());
            out.shared.add(reused ? new HashMap<Integer, Pixels>() : null);
        }
        return out;
    }

    /**
     * The images for channel {@code c} at position {@code other} along the axis the job
     * does not run along ({@link Pixels.Axis#other}), each its whole volume along the
     * job's axis there.
     */
    synchronized Images at(int c, int other) {
        Images.Builder b = new Images.Builder();
        for (int i = 0; i < keys.size(); i++) {
            ImagePlus src = sources.get(i);
            int sc = src.getNChannels() == imp.getNChannels() ? c : 1;
            Map<Integer, Pixels> copies = shared.get(i);
            Pixels px = copies == null ? null : copies.get(sc);
            if (px == null) {
                int so = axis.otherLength(src) == axis.otherLength(imp) ? other : 1;
                px = Pixels.of(src, axis.indices(src, sc, so, 1, axis.length(src)),
                        new java.awt.Rectangle(0, 0, src.getWidth(), src.getHeight()));
                if (copies != null) copies.put(sc, px);
            }
            b.put(keys.get(i), px.data, px.dims);
        }
        return b.build();
    }

    /** The axis the job runs along, which the inputs were checked for. */
    Pixels.Axis axis() {
        return axis;
    }

    /** The dimension a job along {@code axis} runs once per position of. */
    private static String along(Pixels.Axis axis) {
        return axis == Pixels.Axis.SLICES ? "time points" : "slices";
    }

    /**
     * Refuses an input of {@code n} positions along a dimension unless it has one (which
     * serves all) or one for each of the job's {@code of}.
     */
    private static void matches(String named, String what, int n, int of) {
        if (n == 1 || n == of) return;
        // Along frames, the other axis is the slices: a z-stack PSF on a time-lapse of
        // single planes, which runs along frames unless z_axis says otherwise.
        String frames = "slices".equals(what) ? "; the image runs along frames (z_axis=frames), so one plane "
                + "serves each of its slices (for a 3D PSF, its in-focus plane)" : "";
        throw new DenoiseKitException("InvalidInput", named + " has " + n + " " + what + " and the image " + of
                + ": give one for all, or one per " + what.replaceFirst("s$", "")
                + " (Image > Stacks > Tools > Make Substack picks them)" + frames);
    }

    /**
     * Refuses an input whose pixels are another size than the image's, where both are
     * calibrated in the same unit: a PSF measured at another magnification blurs by the
     * wrong amount, and a target of another scale is another image.
     */
    private static void samePixels(String named, Calibration a, Calibration b, boolean depth) {
        double ua = microns(a.getUnit()), ub = microns(b.getUnit());
        boolean same = a.getUnit().equals(b.getUnit());
        if (!a.scaled() || !b.scaled() || !same && (Double.isNaN(ua) || Double.isNaN(ub))) return;
        if (same) ua = ub = 1;
        String[] axes = {"width", "height", "depth"};
        double[] sa = {a.pixelWidth, a.pixelHeight, a.pixelDepth};
        double[] sb = {b.pixelWidth, b.pixelHeight, b.pixelDepth};
        for (int k = 0; k < (depth ? 3 : 2); k++) {
            double x = sa[k] * ua, y = sb[k] * ub;
            // Calibrations written to 4 or 5 significant digits differ in the last one.
            if (Math.abs(x - y) > 1e-3 * Math.max(Math.abs(x), Math.abs(y))) {
                throw new DenoiseKitException("InvalidInput", named + " has a pixel " + axes[k] + " of "
                        + DenoiseCommand.fmt(sa[k]) + " " + a.getUnit() + " and the image "
                        + DenoiseCommand.fmt(sb[k]) + " " + b.getUnit() + ": scale it to the image's pixels "
                        + "(Image > Scale), or set its calibration (Image > Properties) if it is wrong");
            }
        }
    }

    /** Micrometres in one {@code unit} of length as ImageJ spells them; NaN if not one. */
    static double microns(String unit) {
        switch (unit.toLowerCase(java.util.Locale.ROOT)) {
            case "nm": case "nanometer": case "nanometre": case "nanometers": case "nanometres":
                return 1e-3;
            case "\u00b5m": case "\u03bcm": case "um": case "micron": case "microns": case "micrometer": case "micrometre":
            case "micrometers": case "micrometres":
                return 1;
            case "mm": case "millimeter": case "millimetre": case "millimeters": case "millimetres":
                return 1e3;
            default:
                return Double.NaN;
        }
    }
}
