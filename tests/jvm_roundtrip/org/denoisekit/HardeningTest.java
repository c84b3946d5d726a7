package org.denoisekit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * A running Fiji holds a biologist's unsaved work: no call may bring the JVM down. Run by
 * tests/jvm.rs under -Xcheck:jni: hostile arguments to every native entry, jobs on many
 * threads at once, and cancellation of every method while it runs.
 */
class HardeningTest {
    static final String[] VALUES = {"-1", "0", "0.5", "3", "1e308", "-1e308", "nan", "inf", "", "x", "2.0", "1e-320"};
    static final int[] ODD_DIMS = {0, -1, 1, 65536, 1 << 20, Integer.MAX_VALUE, Integer.MIN_VALUE};

    /** Image inputs of any shape, keys and consistency: a PSF, a wrong key, mismatched arrays, nulls. */
    static Images images(Random r, int seed) {
        int n = r.nextInt(3);
        String[] keys = new String[n];
        float[][] px = new float[r.nextInt(8) == 0 ? n + 1 : n][];
        int[][] dims = new int[n][];
        for (int k = 0; k < n; k++) {
            keys[k] = new String[] {"psf_image", "psf_image", "zz", null}[r.nextInt(4)];
            dims[k] = r.nextInt(10) == 0 ? new int[] {-1, 3, 1} : new int[] {dim(r, 6), dim(r, 6), 1 + r.nextInt(3)};
            long product = (long) dims[k][0] * dims[k][1] * dims[k][2];
            boolean fits = product >= 0 && product <= 1500 && r.nextInt(10) < 8;
            px[k] = r.nextInt(12) == 0 ? null : image(fits ? (int) product : r.nextInt(40), seed + k);
        }
        if (r.nextInt(10) == 0) return Images.raw(keys, null, dims);
        return Images.raw(keys, px, dims);
    }

    static float[] image(int n, long seed) {
        Random r = new Random(seed);
        float[] p = new float[n];
        for (int i = 0; i < n; i++) p[i] = (float) (200 + 50 * Math.sin(i * 0.37) + 10 * r.nextGaussian());
        return p;
    }

    static int dim(Random r, int small) {
        return r.nextInt(10) < 7 ? 1 + r.nextInt(small) : ODD_DIMS[r.nextInt(ODD_DIMS.length)];
    }

    @Test
    void everyEntrySurvivesThousandsOfHostileCalls() {
        List<MethodSpec> methods = NativeBridge.methods();
        int[] refDims = {32, 24, 1};
        float[] refInput = image(32 * 24, 1);
        float[] reference = NativeBridge.denoise("nl_means", refInput, refDims, null, null, "cpu", null);
        Random r = new Random(2026);
        Map<String, Integer> kinds = new TreeMap<String, Integer>();
        int succeeded = 0;
        for (int i = 0; i < 4000; i++) {
            MethodSpec m = methods.get(r.nextInt(methods.size()));
            String method = r.nextInt(20) == 0 ? new String[] {null, "", "nope", "GAUSSIAN"}[r.nextInt(4)] : m.id;
            int[] dims;
            switch (r.nextInt(10)) {
                case 0: dims = null; break;
                case 1: dims = new int[r.nextInt(5)]; break;
                default: dims = new int[] {dim(r, 12), dim(r, 12), r.nextInt(10) < 8 ? 1 + r.nextInt(3) : dim(r, 3)};
            }
            long product = dims == null || dims.length != 3 ? -1 : (long) dims[0] * dims[1] * dims[2];
            float[] px = r.nextInt(10) == 0 ? null
                    : image(product >= 0 && product <= 1500 && r.nextInt(10) < 8 ? (int) product : r.nextInt(60), i);
            if (px != null && px.length > 0 && r.nextInt(8) == 0) {
                px[r.nextInt(px.length)] = new float[] {Float.NaN, Float.POSITIVE_INFINITY, 3e38f, 1e-40f}[r.nextInt(4)];
            }
            String[] keys = null, values = null;
            if (r.nextInt(8) != 0) {
                int n = r.nextInt(4);
                keys = new String[n];
                values = r.nextInt(30) == 0 ? new String[n + 1] : new String[n];
                for (int k = 0; k < n; k++) {
                    ParamSpec p = m.params.get(r.nextInt(m.params.size()));
                    keys[k] = r.nextInt(25) == 0 ? (r.nextBoolean() ? null : "zz") : p.key;
                    values[k] = r.nextInt(3) == 0 && p.options != null && p.options.length > 0
                            ? p.options[r.nextInt(p.options.length)]
                            : r.nextInt(3) == 0 ? Double.toString(p.min + (Math.min(p.max, p.min + 20) - p.min) * r.nextDouble())
                            : VALUES[r.nextInt(VALUES.length)];
                }
            }
            String backend = new String[] {"cpu", "cpu", "cpu", null, "auto", "cuda"}[r.nextInt(6)];
            try {
                switch (r.nextInt(9)) {
                    case 0:
                        NativeBridge.denoise(method, px, dims, keys, values, backend, new String[r.nextInt(2)]);
                        break;
                    case 1:
                        // With image inputs (a PSF): well-formed or not, for any method.
                        NativeBridge.denoise(method, px, dims, keys, values, images(r, i), backend, null, 0L);
                        break;
                    case 2:
                        NativeBridge.resolve(method, px, dims, keys, values);
                        break;
                    case 3:
                        // Tuning runs the method ~17 times: small images only.
                        if (product > 400) continue;
                        if (r.nextInt(4) == 0) {
                            // Ranking tunes several: one method, a list, or all of them.
                            String[] lists = {method, "gaussian," + method, null, "median"};
                            NativeBridge.rank(px, dims, lists[r.nextInt(lists.length)]);
                        } else {
                            NativeBridge.tune(method, px, dims, keys, values);
                        }
                        break;
                    case 4:
                        if (r.nextBoolean()) NativeBridge.support(method, keys, values);
                        // Given and every value: hostile in either, or null arrays.
                        else NativeBridge.strengthUnitsWarning(method, keys, values, r.nextBoolean() ? keys : null,
                                values);
                        break;
                    case 5:
                        float[] other = px == null || r.nextInt(4) == 0 ? image(r.nextInt(40), i) : px.clone();
                        NativeBridge.residualCheck(px, other, dims);
                        break;
                    case 6:
                        int which = r.nextInt(3);
                        if (which == 0) NativeBridge.estimateNoise(px, dims);
                        else if (which == 1) NativeBridge.estimatePoissonGaussian(px, dims);
                        else NativeBridge.noiseCorrelation(px, dims);
                        break;
                    case 7:
                        assertFalse(NativeBridge.cancel(r.nextLong()), "an unknown job was cancelled");
                        break;
                    default:
                        long job = NativeBridge.newJob();
                        NativeBridge.cancel(job);
                        NativeBridge.denoise(method, px, dims, keys, values, "cpu", null, job);
                }
                succeeded++;
            } catch (DenoiseKitException e) {
                assertFalse(e.getMessage() == null || e.getMessage().isEmpty(), "an error without a message");
                assertNotEquals("Internal", e.getKind(), e.getMessage());
                kinds.merge(e.getKind(), 1, Integer::sum);
            } catch (Throwable t) {
                fail("call " + i + " (" + method + ") threw " + t, t);
            }
        }
        System.out.println("hostile calls: " + succeeded + " succeeded, errors by kind " + kinds);
        assertTrue(succeeded > 300, "only " + succeeded + " calls succeeded");
        for (String kind : new String[] {"InvalidArgument", "InvalidInput", "InvalidParamValue", "ParamOutOfRange",
                "UnknownParam", "UnknownMethod"}) {
            assertTrue(kinds.containsKey(kind), "no " + kind + " error was provoked: " + kinds);
        }
        // Still alive, and still giving the same answer.
        assertArrayEquals(reference, NativeBridge.denoise("nl_means", refInput, refDims, null, null, "cpu", null));
    }

    @Test
    void jobsOnManyThreadsGiveTheSameResultsAsOneAtATime() throws Exception {
        List<MethodSpec> methods = NativeBridge.methods();
        final List<Object[]> jobs = new ArrayList<Object[]>();
        for (int k = 0; k < methods.size(); k++) {
            MethodSpec m = methods.get(k);
            int[] dims = {48 + k, 40, m.supports3d && k % 2 == 0 ? 3 : 1};
            jobs.add(new Object[] {m.id, image(dims[0] * dims[1] * dims[2], 100 + k), dims});
        }
        final List<float[]> alone = new ArrayList<float[]>();
        for (Object[] j : jobs) {
            alone.add(NativeBridge.denoise((String) j[0], (float[]) j[1], (int[]) j[2], null, null, "cpu", null));
        }
        ExecutorService pool = Executors.newFixedThreadPool(6);
        try {
            List<Future<float[]>> results = new ArrayList<Future<float[]>>();
            for (int round = 0; round < 3; round++) {
                for (final Object[] j : jobs) {
                    results.add(pool.submit(() ->
                            NativeBridge.denoise((String) j[0], (float[]) j[1], (int[]) j[2], null, null, "cpu", null)));
                }
            }
            for (int i = 0; i < results.size(); i++) {
                Object[] j = jobs.get(i % jobs.size());
                assertArrayEquals(alone.get(i % jobs.size()), results.get(i).get(), j[0] + " differs when run concurrently");
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /** Parameters that make a method run for a long time: every iteration count and radius at its largest. */
    static List<String[]> heavy(MethodSpec m) {
        List<String> keys = new ArrayList<String>(), values = new ArrayList<String>();
        for (ParamSpec p : m.params) {
            String k = p.key;
            boolean big = k.contains("iteration") || (k.contains("radius") && !k.endsWith("_z")) || k.contains("shift")
                    || k.contains("spin");
            if (big && "int".equals(p.kind)) {
                keys.add(k);
                values.add(Integer.toString((int) Math.min(p.max, 5000)));
            } else if (k.equals("tolerance") || k.equals("tol")) {
                keys.add(k);
                values.add(Double.toString(p.min));
            }
        }
        List<String[]> kv = new ArrayList<String[]>();
        kv.add(keys.toArray(new String[0]));
        kv.add(values.toArray(new String[0]));
        return kv;
    }

    @Test
    void cancellingAnyMethodStopsItPromptlyAndLeavesNoResult() throws Exception {
        final int n = 768;
        final float[] px = image(n * n, 5);
        StringBuilder report = new StringBuilder();
        long worst = 0;
        for (final MethodSpec m : NativeBridge.methods()) {
            final List<String[]> kv = heavy(m);
            final long job = NativeBridge.newJob();
            final Object[] result = new Object[1];
            Thread worker = new Thread(() -> {
                try {
                    result[0] = NativeBridge.denoise(m.id, px, new int[] {n, n, 1}, kv.get(0), kv.get(1), "cpu", null, job);
                } catch (DenoiseKitException e) {
                    result[0] = e;
                }
            });
            worker.start();
            Thread.sleep(200);
            long t0 = System.nanoTime();
            boolean wasRunning = NativeBridge.cancel(job);
            worker.join(30000);
            long ms = (System.nanoTime() - t0) / 1000000;
            assertFalse(worker.isAlive(), m.id + " did not stop within 30 s of cancel");
            if (!wasRunning) {
                // Done within 200 ms: nothing to cancel, and a complete result.
                assertTrue(result[0] instanceof float[], m.id + ": " + result[0]);
                report.append(String.format(" %s=done-before-cancel", m.id));
                continue;
            }
            if (result[0] instanceof float[]) {
                // It finished between the request and its next checkpoint: whole, not partial.
                assertEquals(n * n, ((float[]) result[0]).length);
            } else {
                assertEquals("Cancelled", ((DenoiseKitException) result[0]).getKind(), m.id);
            }
            worst = Math.max(worst, ms);
            report.append(String.format(" %s=%dms", m.id, ms));
        }
        System.out.println("cancel latency (768x768, heaviest settings):" + report + "; worst " + worst + " ms");
        // The goal is 100 ms; the bound leaves room for a loaded CI machine.
        assertTrue(worst < 1000, "cancel took " + worst + " ms:" + report);
    }
}
