package org.denoisekit;

import java.util.ArrayList;
import java.util.List;

/**
 * The images a job passes besides the one it processes, one per image input of the method
 * ({@link MethodSpec#images}): a measured PSF for Richardson-Lucy, say. Each is copied by
 * the native side, with its dimensions checked like the main image's.
 */
public final class Images {
    static final Images NONE = new Images();

    final String[] keys;
    final float[][] pixels;
    final int[][] dims;

    private Images() {
        keys = null;
        pixels = null;
        dims = null;
    }

    private Images(List<String> k, List<float[]> p, List<int[]> d) {
        keys = k.toArray(new String[0]);
        pixels = p.toArray(new float[0][]);
        dims = d.toArray(new int[0][]);
    }

    /** Collects images by key. */
    public static final class Builder {
        private final List<String> keys = new ArrayList<String>();
        private final List<float[]> pixels = new ArrayList<float[]>();
        private final List<int[]> dims = new ArrayList<int[]>();

        /** The image of input {@code key}: {@code width*height*depth} pixels and {@code {width, height, depth}}. */
        public Builder put(String key, float[] pixels, int[] dims) {
            keys.add(key);
            this.pixels.add(pixels);
            this.dims.add(dims);
            return this;
        }

        public Images build() {
            return keys.isEmpty() ? NONE : new Images(keys, pixels, dims);
        }
    }

    /** Raw arrays, passed as they are (for tests of the native checks): any may be null. */
    public static Images raw(String[] keys, float[][] pixels, int[][] dims) {
        return new Images(keys, pixels, dims);
    }

    private Images(String[] k, float[][] p, int[][] d) {
        keys = k;
        pixels = p;
        dims = d;
    }
}
