package org.denoisekit.ij;

import java.util.IdentityHashMap;
import java.util.Map;
import org.denoisekit.DenoiseKitException;

/**
 * NaN as masked-out: each plane's non-finite pixels are filled from their finite
 * neighbours (a breadth-first sweep from the valid pixels, each filled pixel the mean of
 * its already known 4-neighbours), the job runs on the filled plane, and those pixels are
 * NaN again in the result. The fill is a function of the whole plane only, and every
 * plane is filled whole before a region is cut out, so a preview equals the final run.
 * One instance caches the planes it filled (by identity of their pixel arrays).
 */
final class NanFill {
    private final Map<Object, float[]> filled = new IdentityHashMap<Object, float[]>();

    /** Whether {@code px} (a float plane) holds a non-finite value. */
    static boolean hasNonFinite(float[] px) {
        for (float v : px) {
            if (Float.isNaN(v) || Float.isInfinite(v)) return true;
        }
        return false;
    }

    /** The plane with its non-finite pixels filled; the plane itself if it has none. */
    synchronized float[] plane(float[] px, int w, int h) {
        float[] done = filled.get(px);
        if (done == null) {
            done = hasNonFinite(px) ? fill(px, w, h) : px;
            filled.put(px, done);
        }
        return done;
    }

    static float[] fill(float[] src, int w, int h) {
        int n = w * h;
        float[] out = src.clone();
        boolean[] known = new boolean[n];
        int[] queue = new int[n];
        int head = 0, tail = 0;
        for (int i = 0; i < n; i++) {
            known[i] = !Float.isNaN(src[i]) && !Float.isInfinite(src[i]);
        }
        // Neighbour offsets; a pixel on an edge skips the ones outside the plane.
        int[] step = {-1, 1, -w, w};
        // The first wave: unknown pixels next to a known one, in raster order.
        boolean[] queued = new boolean[n];
        for (int i = 0; i < n; i++) {
            if (!known[i] && hasKnownNeighbour(known, i, w, h, step)) {
                queue[tail++] = i;
                queued[i] = true;
            }
        }
        if (tail == 0) {
            for (boolean k : known) {
                if (k) return out;
            }
            throw new DenoiseKitException("InvalidInput",
                    "a plane has no finite pixel (every pixel is NaN or infinite): there is nothing to denoise "
                            + "in it, or to fill its masked-out pixels from");
        }
        while (head < tail) {
            int i = queue[head++];
            int x = i % w, y = i / w;
            double sum = 0;
            int count = 0;
            for (int k = 0; k < 4; k++) {
                if (!inside(k, x, y, w, h)) continue;
                int j = i + step[k];
                if (known[j]) {
                    sum += out[j];
                    count++;
                } else if (!queued[j]) {
                    queued[j] = true;
                    queue[tail++] = j;
                }
            }
            out[i] = (float) (sum / count);
            known[i] = true;
        }
        return out;
    }

    /** Whether neighbour k (left, right, up, down) of (x, y) lies in the plane. */
    private static boolean inside(int k, int x, int y, int w, int h) {
        return k == 0 ? x > 0 : k == 1 ? x < w - 1 : k == 2 ? y > 0 : y < h - 1;
    }

    private static boolean hasKnownNeighbour(boolean[] known, int i, int w, int h, int[] step) {
        for (int k = 0; k < 4; k++) {
            if (inside(k, i % w, i / w, w, h) && known[i + step[k]]) return true;
        }
        return false;
    }

    /** Puts NaN back wherever {@code input} (the unfilled pixels of a job) was not finite. */
    static void restore(float[] input, float[] out) {
        for (int i = 0; i < out.length; i++) {
            if (Float.isNaN(input[i]) || Float.isInfinite(input[i])) out[i] = Float.NaN;
        }
    }
}
