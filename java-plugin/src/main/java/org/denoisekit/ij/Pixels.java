package org.denoisekit.ij;

import ij.ImagePlus;
import ij.process.ImageProcessor;
import java.awt.Rectangle;
import org.denoisekit.DenoiseKitException;

/** Pixels of one region of one or more planes as floats in raw grey levels, with {w, h, d}. */
final class Pixels {
    final float[] data;
    final int[] dims;

    private Pixels(float[] data, int w, int h, int d) {
        this.data = data;
        this.dims = new int[] {w, h, d};
    }

    int width() {
        return dims[0];
    }

    int height() {
        return dims[1];
    }

    /** Java arrays hold at most 2^31 - 1 values: larger volumes need the CLI. */
    static int checkedSize(long w, long h, long d) {
        long n = w * h * d;
        if (n > Integer.MAX_VALUE - 8) {
            throw new DenoiseKitException("TooLarge", w + "x" + h + "x" + d + " = " + n
                    + " voxels exceed the 2^31 values a Java array can hold; process fewer slices or use the denoisekit CLI");
        }
        return (int) n;
    }

    /** The stack planes with these (1-based) indices, in order, cropped to r. */
    static Pixels of(ImagePlus imp, int[] indices, Rectangle r) {
        return of(imp, indices, r, null);
    }

    /**
     * As above; with {@code fill} non-null, each float plane's non-finite pixels are first
     * filled from the whole plane ({@link NanFill}).
     */
    static Pixels of(ImagePlus imp, int[] indices, Rectangle r, NanFill fill) {
        float[] out = new float[checkedSize(r.width, r.height, indices.length)];
        for (int i = 0; i < indices.length; i++) {
            ImageProcessor ip = imp.getStack().getProcessor(indices[i]);
            if (fill != null && ip.getPixels() instanceof float[]) {
                float[] plane = fill.plane((float[]) ip.getPixels(), ip.getWidth(), ip.getHeight());
                for (int y = 0; y < r.height; y++) {
                    System.arraycopy(plane, (r.y + y) * ip.getWidth() + r.x, out, i * r.width * r.height + y * r.width,
                            r.width);
                }
            } else {
                copy(ip, r, out, i * r.width * r.height);
            }
        }
        return new Pixels(out, r.width, r.height, indices.length);
    }

    /** Slices {@code z0..z1} (1-based, inclusive) of channel c and frame t, cropped to r. */
    static Pixels of(ImagePlus imp, int c, int z0, int z1, int t, Rectangle r) {
        return of(imp, Axis.SLICES.indices(imp, c, t, z0, z1), r);
    }

    /** The whole z-stack of channel c and frame t. */
    static Pixels of(ImagePlus imp, int c, int t) {
        return of(imp, c, 1, imp.getNSlices(), t, new Rectangle(0, 0, imp.getWidth(), imp.getHeight()));
    }

    /**
     * Slices {@code z0..z1} of channel c and frame t, whole, their non-finite pixels filled
     * ({@link NanFill}): what defaults, noise estimates and tuning measure. A NaN on screen
     * would otherwise refuse the very measurement nan_masked needs; a job that does not
     * mask NaN is still refused by the library, naming the pixel.
     */
    static Pixels measured(ImagePlus imp, int c, int z0, int z1, int t) {
        return of(imp, Axis.SLICES.indices(imp, c, t, z0, z1), new Rectangle(0, 0, imp.getWidth(), imp.getHeight()),
                new NanFill());
    }

    /** Which hyperstack dimension a 3D method treats as its third axis. */
    enum Axis {
        SLICES, FRAMES;

        int length(ImagePlus imp) {
            return this == SLICES ? imp.getNSlices() : imp.getNFrames();
        }

        /** Position of the current plane along this axis (1-based). */
        int current(ImagePlus imp) {
            return this == SLICES ? imp.getZ() : imp.getT();
        }

        /** Position along the remaining axis: the frame for SLICES, the slice for FRAMES. */
        int other(ImagePlus imp) {
            return this == SLICES ? imp.getT() : imp.getZ();
        }

        /** Length of the remaining axis. */
        int otherLength(ImagePlus imp) {
            return this == SLICES ? imp.getNFrames() : imp.getNSlices();
        }

        /** Stack indices of positions a0..a1 (1-based, inclusive) along this axis at
         * channel c and position {@code other} along the remaining axis. */
        int[] indices(ImagePlus imp, int c, int other, int a0, int a1) {
            int[] out = new int[a1 - a0 + 1];
            for (int a = a0; a <= a1; a++) {
                out[a - a0] = this == SLICES ? imp.getStackIndex(c, a, other) : imp.getStackIndex(c, other, a);
            }
            return out;
        }
    }

    /** One processor, cropped to r. */
    static Pixels of(ImageProcessor ip, Rectangle r) {
        float[] out = new float[checkedSize(r.width, r.height, 1)];
        copy(ip, r, out, 0);
        return new Pixels(out, r.width, r.height, 1);
    }

    private static void copy(ImageProcessor ip, Rectangle r, float[] dst, int offset) {
        int w = ip.getWidth();
        Object px = ip.getPixels();
        for (int y = 0; y < r.height; y++) {
            int src = (r.y + y) * w + r.x;
            int o = offset + y * r.width;
            if (px instanceof float[]) {
                System.arraycopy(px, src, dst, o, r.width);
            } else if (px instanceof short[]) {
                short[] p = (short[]) px;
                for (int x = 0; x < r.width; x++) dst[o + x] = p[src + x] & 0xffff;
            } else if (px instanceof byte[]) {
                byte[] p = (byte[]) px;
                for (int x = 0; x < r.width; x++) dst[o + x] = p[src + x] & 0xff;
            } else {
                throw new DenoiseKitException("InvalidInput", "DenoiseKit needs an 8-bit, 16-bit or 32-bit grey image");
            }
        }
    }

    /** Rounds to the nearest integer and clamps to [0, max]: the type's own range only. */
    static int clampRound(float v, int max) {
        long r = Math.round((double) v);
        return (int) Math.max(0, Math.min(max, r));
    }

    /**
     * Writes {@code src} (a {@code srcWidth}-wide plane starting at {@code offset}), region
     * {@code from} of it, into {@code ip} at {@code to}'s corner, converting to ip's type.
     */
    static void write(ImageProcessor ip, float[] src, int offset, int srcWidth, Rectangle from, Rectangle to) {
        int w = ip.getWidth();
        Object px = ip.getPixels();
        for (int y = 0; y < from.height; y++) {
            int s = offset + (from.y + y) * srcWidth + from.x;
            int d = (to.y + y) * w + to.x;
            if (px instanceof float[]) {
                System.arraycopy(src, s, px, d, from.width);
            } else if (px instanceof short[]) {
                short[] p = (short[]) px;
                for (int x = 0; x < from.width; x++) p[d + x] = (short) clampRound(src[s + x], 65535);
            } else if (px instanceof byte[]) {
                byte[] p = (byte[]) px;
                for (int x = 0; x < from.width; x++) p[d + x] = (byte) clampRound(src[s + x], 255);
            }
        }
    }
}
