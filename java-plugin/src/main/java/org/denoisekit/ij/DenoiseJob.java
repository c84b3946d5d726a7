package org.denoisekit.ij;

import ij.CompositeImage;
import ij.IJ;
import ij.ImagePlus;
import ij.ImageStack;
import ij.Undo;
import ij.gui.Roi;
import ij.measure.Calibration;
import ij.process.ByteProcessor;
import ij.process.FloatProcessor;
import ij.process.LUT;
import ij.process.ImageProcessor;
import ij.process.ShortProcessor;
import java.awt.Rectangle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.denoisekit.Images;
import org.denoisekit.MethodSpec;
import org.denoisekit.NativeBridge;
import org.denoisekit.ParamSpec;

/**
 * One Denoise... run, fully specified: what the panel's Apply and a macro's
 * {@code run("Denoise...", options)} both execute, so that a recorded line replays the
 * interactive result to the pixel. {@link #options()} is that line's option string.
 */
final class DenoiseJob {
    static final String NONE = "none";
    /** The job's checkboxes as {@link #options} records them: a bare word ticks one. */
    static final String IN_PLACE = "in_place", FLOAT_RESULT = "float_result", NAN_MASKED = "nan_masked";
    static final List<String> FLAGS = Arrays.asList(IN_PLACE, FLOAT_RESULT, NAN_MASKED);
    /** The job's choices as {@link #options} records them, each with its values. */
    static final String SCOPE = "scope", Z_AXIS = "z_axis";
    /** The key of the noise model every denoiser shares (the core's NOISE_MODEL_PARAMS). */
    static final String NOISE_MODEL = "noise_model";

    /**
     * Whether {@code value} of {@code m}'s noise model lets the image choose: the model's
     * default in the descriptor (auto), under which the noise model and camera are
     * measured, not given.
     */
    static boolean autoModel(MethodSpec m, String value) {
        ParamSpec spec = m.param(NOISE_MODEL);
        return spec != null && spec.defaultChoice != null && spec.defaultChoice.equalsIgnoreCase(value);
    }
    static final String STACK = "stack", SLICE = "slice", SLICES = "slices", FRAMES = "frames";
    static final List<String> SCOPES = Arrays.asList(STACK, SLICE);
    static final List<String> Z_AXES = Arrays.asList(SLICES, FRAMES);

    final ImagePlus imp;
    final MethodSpec method;
    final String backend;
    /** Every parameter, in descriptor order, as the text passed to the library. */
    final String[] keys;
    final String[] values;
    final ImageInputs images;
    /** The image chosen for each of the method's image inputs ("none" if none). */
    final String[] imageTitles;
    final boolean oneSlice;
    final Pixels.Axis axis;
    final boolean inPlace;
    final boolean floatResult;
    /** NaN pixels treated as masked-out ({@link NanFill}) instead of refused. */
    final boolean nanMasked;
    /**
     * The calibration table of an 8- or 16-bit source whose values a float result holds
     * calibrated (its calibration function, signed 16-bit's among them), or null.
     */
    private final float[] table;

    DenoiseJob(ImagePlus imp, MethodSpec method, String backend, String[] keys, String[] values, ImageInputs images,
            String[] imageTitles, boolean oneSlice, boolean inPlace, boolean floatResult,
            boolean nanMasked) {
        this.imp = imp;
        this.method = method;
        this.backend = backend;
        this.keys = keys;
        this.values = values;
        this.images = images;
        this.imageTitles = imageTitles;
        this.oneSlice = oneSlice;
        this.axis = images.axis();
        this.inPlace = inPlace;
        this.floatResult = floatResult;
        this.nanMasked = nanMasked;
        Calibration cal = imp.getCalibration();
        this.table = floatResult && imp.getBitDepth() != 32 && cal.calibrated() ? cal.getCTable() : null;
    }

    /** A problem with the output options, or null. */
    String check() {
        if (inPlace && floatResult) {
            return "in_place keeps the image's bit depth: untick float_result, or in_place for a 32-bit copy";
        }
        if (inPlace && imp.getStack().isVirtual()) {
            return "in_place is not possible on a virtual stack (its slices are read from disk); untick it";
        }
        return null;
    }

    /**
     * A value as macro options write it: in brackets when it holds a space (a path) or
     * starts with one (the parser strips one pair).
     */
    static String macroValue(String v) {
        return v.matches("(?s).*\\s.*") || v.startsWith("[") ? "[" + v + "]" : v;
    }

    /**
     * {@code s} as the text of a macro's string literal: the recorder writes it between
     * quotes as it is, and the macro reads {@code \} as an escape (a Windows path
     * {@code C:\Users\w.json} read back as {@code C:Usersw.json}).
     */
    static String macroString(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"");
    }

    /**
     * {@code values} (one per parameter of {@code m}, in order) for a crop: what means
     * something only for the whole image left empty. A timing run sees a crop, whose
     * weights must not replace the ones the final run saves, and whose coordinates are not
     * the image's (a preview translates a region instead: {@link Grown#values}).
     */
    static String[] forCrop(MethodSpec m, String[] values) {
        String[] out = values.clone();
        for (int i = 0; i < out.length && i < m.params.size(); i++) {
            if (m.params.get(i).wholeImageOnly) out[i] = "";
        }
        return out;
    }

    /** The macro options that replay this job: {@code run("Denoise...", options())}. */
    String options() {
        StringBuilder b = new StringBuilder("method=").append(method.id).append(" backend=").append(backend);
        for (int i = 0; i < keys.length; i++) b.append(' ').append(keys[i]).append('=').append(macroValue(values[i]));
        for (int i = 0; i < imageTitles.length; i++) {
            // A title left in a list whose switch is off was not used: recorded, the replay
            // would be refused.
            if (!NONE.equals(imageTitles[i]) && method.images.get(i).chosenBy(keys, values)) {
                b.append(' ').append(method.images.get(i).key).append("=[").append(imageTitles[i]).append(']');
            }
        }
        if (imp.getStackSize() > 1) b.append(' ').append(SCOPE).append('=').append(oneSlice ? SLICE : STACK);
        if (imp.getNFrames() > 1) {
            b.append(' ').append(Z_AXIS).append('=').append(axis == Pixels.Axis.FRAMES ? FRAMES : SLICES);
        }
        if (inPlace) b.append(' ').append(IN_PLACE);
        if (floatResult) b.append(' ').append(FLOAT_RESULT);
        if (nanMasked) b.append(' ').append(NAN_MASKED);
        return b.toString();
    }

    /**
     * The third axis a job runs along unless told: the frames of a time-lapse of single
     * planes, else the slices.
     */
    static Pixels.Axis defaultAxis(ImagePlus imp) {
        return imp.getNFrames() > 1 && imp.getNSlices() == 1 ? Pixels.Axis.FRAMES : Pixels.Axis.SLICES;
    }

    /**
     * Denoises {@code region} of the current plane exactly as a run with the default options
     * would ({@link #defaultAxis}): on the region grown by the method's support in x, y and
     * along the third axis. Returns a region-sized plane.
     */
    static float[] denoiseRegion(ImagePlus imp, MethodSpec method, String[] keys, String[] values, String backend,
            Rectangle region, long job) {
        return denoiseRegion(imp, defaultAxis(imp), method, keys, values, null, backend, region, null, job);
    }

    /**
     * As above, with {@code axis} (slices or frames) as the method's third dimension, the
     * method's other images (or null) and NaN handling (null: NaN is refused).
     */
    static float[] denoiseRegion(ImagePlus imp, Pixels.Axis axis, MethodSpec method, String[] keys, String[] values,
            Images images, String backend, Rectangle region, NanFill fill, long job) {
        return new Grown(imp, axis, method, keys, values, region).denoise(method, keys, values, images, backend, fill,
                job);
    }

    /**
     * A region grown by a method's halo on the planes the halo reaches: what a region's
     * native call is given, and where the region lies in what it returns (its result, or
     * an intermediate one while it runs).
     */
    static final class Grown {
        final ImagePlus imp;
        final Pixels.Axis axis;
        final Rectangle region;
        final Rectangle grown;
        final int z;
        final int z0;
        final int z1;

        Grown(ImagePlus imp, Pixels.Axis axis, MethodSpec method, String[] keys, String[] values, Rectangle region) {
            this.imp = imp;
            this.axis = axis;
            this.region = region;
            int[] halo = NativeBridge.support(method.id, keys, values);
            grown = new Rectangle(region.x - halo[0], region.y - halo[1], region.width + 2 * halo[0],
                    region.height + 2 * halo[1]).intersection(new Rectangle(0, 0, imp.getWidth(), imp.getHeight()));
            z = axis.current(imp);
            z0 = Math.max(1, z - halo[2]);
            z1 = Math.min(axis.length(imp), z + halo[2]);
        }

        /**
         * {@code values} for the grown region: files the method writes left empty (the
         * final run writes them), and a region in the image's coordinates moved into the
         * grown region's, clipped to it (empty when nothing of it is there). A method that
         * couples the whole plane, as the learned one, grows to the whole plane, where the
         * region stays as it is.
         */
        String[] values(MethodSpec m, String[] values) {
            String[] out = forCrop(m, values);
            for (int i = 0; i < out.length && i < m.params.size(); i++) {
                if (!m.params.get(i).isRegion() || values[i].trim().isEmpty()) continue;
                String[] p = values[i].replace("[", "").replace("]", "").split(",");
                try {
                    Rectangle r = new Rectangle(Integer.parseInt(p[0].trim()), Integer.parseInt(p[1].trim()),
                            Integer.parseInt(p[2].trim()), Integer.parseInt(p[3].trim())).intersection(grown);
                    out[i] = r.isEmpty() ? "" : (r.x - grown.x) + "," + (r.y - grown.y) + "," + r.width + "," + r.height;
                } catch (RuntimeException e) {
                    // Malformed: the library names the problem, as for the final run.
                    out[i] = values[i];
                }
            }
            return out;
        }

        /** Runs the method on the grown region; returns the region's plane of the result. */
        float[] denoise(MethodSpec method, String[] keys, String[] values, Images images, String backend,
                NanFill fill, long job) {
            Pixels in = Pixels.of(imp, axis.indices(imp, imp.getC(), axis.other(imp), z0, z1), grown, fill);
            return crop(NativeBridge.denoise(method.id, in.data, in.dims, keys, values, images, backend, null, job),
                    fill);
        }

        /**
         * The region's plane of {@code out}, laid out as the grown input, with masked NaN
         * put back when {@code fill} filled them; null when {@code out} has another size.
         */
        float[] crop(float[] out, NanFill fill) {
            if (out.length != grown.width * grown.height * (z1 - z0 + 1)) return null;
            float[] plane = new float[region.width * region.height];
            int off = (z - z0) * grown.width * grown.height;
            for (int y = 0; y < region.height; y++) {
                System.arraycopy(out, off + (region.y - grown.y + y) * grown.width + (region.x - grown.x), plane,
                        y * region.width, region.width);
            }
            if (fill != null) {
                int[] here = axis.indices(imp, imp.getC(), axis.other(imp), z, z);
                NanFill.restore(Pixels.of(imp, here, region).data, plane);
            }
            return plane;
        }
    }

    /** What a finished run reports: the result's note and the residual check's warning. */
    static final class Outcome {
        final ImagePlus result;
        final String note;
        final String warning;
        final double ms;

        Outcome(ImagePlus result, String note, String warning, double ms) {
            this.result = result;
            this.note = note;
            this.warning = warning;
            this.ms = ms;
        }
    }

    /**
     * Runs the job under {@code watch} (cancellation and progress): each channel and
     * position along the other axis is one volume along {@link #axis}. In place, nothing
     * is written until every volume succeeded. Returns the shown result (or the source).
     */
    Outcome run(CancelWatch watch) {
        // The selection as the run starts: the user may draw another while it runs.
        Roi roi = inPlace && imp.getRoi() != null ? (Roi) imp.getRoi().clone() : null;
        ImageStack stack = imp.getStack();
        int w = imp.getWidth(), h = imp.getHeight();
        int nc = imp.getNChannels(), nz = imp.getNSlices(), nt = imp.getNFrames();
        int[] cs = oneSlice ? new int[] {imp.getC()} : range(nc);
        int[] others = oneSlice ? new int[] {axis.other(imp)} : range(axis.otherLength(imp));
        int len = axis.length(imp);
        String[] info = new String[1];
        long t0 = System.nanoTime();
        int done = 0;
        int groups = cs.length * others.length;
        ImageProcessor[] outs = new ImageProcessor[stack.getSize()];
        Rectangle full = new Rectangle(0, 0, w, h);
        String warning = "";
        NanFill fill = nanMasked ? new NanFill() : null;
        List<int[]> doneIndices = new ArrayList<int[]>();
        List<float[]> doneOut = new ArrayList<float[]>();
        for (int o : others) {
            for (int c : cs) {
                watch.stage(done, groups);
                int a0 = oneSlice ? axis.current(imp) : 1, a1 = oneSlice ? axis.current(imp) : len;
                int[] indices = axis.indices(imp, c, o, a0, a1);
                Images here = images.at(c, o);
                float[] out;
                Pixels v = Pixels.of(imp, indices, full, fill);
                if (oneSlice) {
                    out = denoiseRegion(imp, axis, method, keys, values, here, backend, full, fill, watch.job);
                    info[0] = "the current plane";
                } else {
                    out = NativeBridge.denoise(method.id, v.data, v.dims, keys, values, here, backend, info,
                            watch.job);
                    if (fill != null) NanFill.restore(Pixels.of(imp, indices, full).data, out);
                }
                if (warning.isEmpty() && "denoise".equals(method.kind) && fill == null) {
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
                done++;
            }
        }
        watch.stage(groups, groups);
        if (inPlace && doneIndices.size() == 1 && doneIndices.get(0).length == 1
                && doneIndices.get(0)[0] == imp.getCurrentSlice()) {
            // One plane changed, the one on screen: ImageJ's Undo can restore it (it holds
            // one slice only). Undo resets the image's own processor, which shares that
            // plane's pixels: the snapshot must be its, not a fresh processor's.
            imp.getProcessor().snapshot();
            Undo.setup(Undo.FILTER, imp);
        } else if (inPlace) {
            Undo.reset();
        }
        // With an area selection, only its pixels change, as with ImageJ's own filters; the
        // method still saw the whole plane around them.
        Rectangle bounds = roi != null && roi.isArea() ? roi.getBounds() : null;
        Rectangle area = bounds != null ? bounds.intersection(full) : full;
        ImageProcessor mask = bounds != null ? roi.getMask() : null;
        for (int g = 0; g < doneIndices.size(); g++) {
            int[] indices = doneIndices.get(g);
            float[] o = doneOut.get(g);
            for (int i = 0; i < indices.length; i++) {
                ImageProcessor ip = stack.getProcessor(indices[i]);
                for (int y = area.y; mask != null && y < area.y + area.height; y++) {
                    for (int x = area.x; x < area.x + area.width; x++) {
                        if (mask.get(x - bounds.x, y - bounds.y) == 0) o[i * w * h + y * w + x] = ip.getf(x, y);
                    }
                }
                Pixels.write(ip, o, i * w * h, w, area, area);
            }
        }
        double ms = (System.nanoTime() - t0) / 1e6;
        String note = "DenoiseKit " + NativeBridge.version() + ": " + options() + " on " + info[0];
        if (inPlace) {
            appendInfo(imp, note);
            imp.changes = true;
            imp.updateAndDraw();
            return new Outcome(imp, note, warning, ms);
        }
        ImagePlus out = oneSlice ? singleSlice(outs) : wholeStack(outs, stack, nc, nz, nt);
        // A float result holds calibrated values ({@link #toProcessor}), as Image > Type >
        // 32-bit gives: ImageJ has no calibration function on 32-bit images, so the raw
        // values of a signed 16-bit image would read 32768 too high.
        Calibration cal = imp.getCalibration().copy();
        if (table != null) cal.disableDensityCalibration();
        out.setCalibration(cal);
        String srcInfo = (String) imp.getProperty("Info");
        if (srcInfo != null) out.setProperty("Info", srcInfo);
        appendInfo(out, note);
        if (imp.getOverlay() != null) out.setOverlay(imp.getOverlay().duplicate());
        if (!oneSlice && imp.isComposite() && nc > 1) {
            CompositeImage ci = new CompositeImage(out, ((CompositeImage) imp).getMode());
            LUT[] luts = ((CompositeImage) imp).getLuts();
            for (int i = 0; i < luts.length; i++) {
                luts[i] = (LUT) luts[i].clone();
                double[] range = calibratedRange(luts[i].min, luts[i].max);
                luts[i].min = range[0];
                luts[i].max = range[1];
            }
            ci.setLuts(luts);
            out = ci;
        } else {
            // The channel's own LUT and display range, as Duplicate keeps them: a composite's
            // processor holds the last channel's, and a reset range would show the result
            // with another contrast than the source beside it.
            LUT lut = imp.isComposite() ? ((CompositeImage) imp).getChannelLut(imp.getC()) : null;
            if (lut != null) {
                out.getProcessor().setColorModel(lut);
                double[] range = calibratedRange(lut.min, lut.max);
                out.setDisplayRange(range[0], range[1]);
            } else {
                out.getProcessor().setColorModel(imp.getProcessor().getColorModel());
                double[] range = calibratedRange(imp.getDisplayRangeMin(), imp.getDisplayRangeMax());
                out.setDisplayRange(range[0], range[1]);
            }
        }
        return new Outcome(out, note, warning, ms);
    }

    /** Logs a finished run: the line that replays it and the residual check. */
    static void log(Outcome o) {
        IJ.log(String.format("%s (%.0f ms)", o.note, o.ms));
        if (!o.warning.isEmpty()) IJ.log("DenoiseKit warning: " + o.warning);
    }

    private ImagePlus singleSlice(ImageProcessor[] outs) {
        int index = imp.getCurrentSlice();
        ImagePlus out = new ImagePlus(stripExtension(imp.getTitle()) + "-" + method.id, outs[index - 1]);
        // A single image keeps its slice's label as ImageJ's Duplicate does.
        String label = imp.getStack().getSliceLabel(index);
        if (label != null) out.setProperty("Label", label);
        return out;
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

    /** Adds a line to the Info property; the property always ends in a line break, so
     * Show Info's own lines start on a new line after it. */
    private static void appendInfo(ImagePlus im, String line) {
        String old = (String) im.getProperty("Info");
        if (old == null) old = "";
        if (!old.isEmpty() && !old.endsWith("\n")) old += "\n";
        im.setProperty("Info", old + line + "\n");
    }

    /**
     * The title without a file extension ("cells.ome.tif" -> "cells"): a last dot followed
     * by 1 to 5 letters and digits, starting with a letter (tif, nd2, dm4), so that a dot
     * inside a name ("Exp 2.5um field") is kept.
     */
    static String stripExtension(String title) {
        String t = title.replaceFirst("\\.[A-Za-z][A-Za-z0-9]{0,4}$", "");
        return t.isEmpty() ? title : t.replaceFirst("\\.ome$", "");
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
        if (table != null) {
            float[] px = (float[]) ip.getPixels();
            for (int i = 0; i < px.length; i++) px[i] = (float) calibrated(px[i]);
        }
        return ip;
    }

    /**
     * A display range as the float result shows it: its ends {@link #calibrated}, in
     * order (a decreasing calibration, as optical density, swaps them).
     */
    private double[] calibratedRange(double min, double max) {
        double a = calibrated(min), b = calibrated(max);
        return new double[] {Math.min(a, b), Math.max(a, b)};
    }

    /**
     * A raw value (a denoised one lies between the source's integer levels) as the
     * calibrated value of a float result: linear between the table's levels, and beyond
     * its ends along its end segments (a float result keeps values outside the source's
     * range, such as a deconvolution's overshoot; exact for a straight-line calibration,
     * signed 16-bit's). The raw value as it is when no table applies.
     */
    private double calibrated(double raw) {
        float[] t = table;
        if (t == null || Double.isNaN(raw)) return raw;
        int i = (int) Math.max(0, Math.min(t.length - 2, Math.floor(raw)));
        return t[i] + (raw - i) * (t[i + 1] - t[i]);
    }
}
