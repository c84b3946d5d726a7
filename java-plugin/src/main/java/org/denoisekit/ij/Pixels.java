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

    /** Slices {@code z0..z1} (1-based, inclusive) of channel c and frame t, cropped to r. */
    static Pixels of(ImagePlus imp, int c, int z0, int z1, int t, Rectangle r) {
        int d = z1 - z0 + 1;
        float[] out = new float[checkedSize(r.width, r.height, d)];
        for (int z = z0; z <= z1; z++) {
            ImageProcessor ip = imp.getStack().getProcessor(imp.getStackIndex(c, z, t));
            copy(ip, r, out, (z - z0) * r.width * r.height);
        }
        return new Pixels(out, r.width, r.height, d);
    }

    /** The whole z-stack of channel c and frame t. */
    static Pixels of(ImagePlus imp, int c, int t) {
        return of(imp, c, 1, imp.getNSlices(), t, new Rectangle(0, 0, imp.getWidth(), imp.getHeight()));
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
