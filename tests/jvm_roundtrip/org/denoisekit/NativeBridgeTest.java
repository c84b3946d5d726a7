package org.denoisekit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Every native entry of NativeBridge with good and bad input, run under -Xcheck:jni by
 * tests/jvm.rs. A bad call must throw DenoiseKitException with a message naming the
 * problem, and the library must keep working afterwards.
 */
class NativeBridgeTest {
    static final int[] DIMS = {24, 20, 1};

    static float[] noisy(int n, long seed, double sigma) {
        Random r = new Random(seed);
        float[] p = new float[n];
        for (int i = 0; i < n; i++) p[i] = (float) (100 + (i % 7) + sigma * r.nextGaussian());
        return p;
    }

    static DenoiseKitException fails(String kind, String messagePart, Executable call) {
        DenoiseKitException e = assertThrows(DenoiseKitException.class, call);
        assertEquals(kind, e.getKind(), e.getMessage());
        assertTrue(e.getMessage().contains(messagePart), "message '" + e.getMessage() + "' lacks '" + messagePart + "'");
        return e;
    }

    @Test
    void versionIsSemver() {
        assertTrue(NativeBridge.version().matches("\\d+\\.\\d+\\.\\d+.*"), NativeBridge.version());
    }

    @Test
    void registryParsesAndKeysDoNotCollideWithDialogKeys() {
        List<MethodSpec> methods = NativeBridge.methods();
        assertTrue(methods.size() >= 3);
        Set<String> ids = new HashSet<String>();
        for (MethodSpec m : methods) {
            assertTrue(ids.add(m.id), "duplicate id " + m.id);
            assertFalse(m.params.isEmpty(), m.id);
            Set<String> keys = new HashSet<String>();
            for (ParamSpec p : m.params) {
                assertTrue(keys.add(p.key), m.id + " repeats " + p.key);
                for (String reserved : new String[] {"method", "backend", "scope", "z_axis", "in_place",
                        "float_result", "nan_masked", "view"}) {
                    assertFalse(p.key.equals(reserved), m.id + " uses the dialog key " + reserved);
                }
                assertTrue(p.key.matches("[a-z][a-z0-9_]*"), "macro key " + p.key);
                assertFalse(p.help.isEmpty(), p.key);
            }
            // Compare's warm-up runs the quick settings: each names a parameter, and a
            // numeric one lies below its default (fewer steps or iterations).
            for (Map.Entry<String, String> q : m.quick.entrySet()) {
                assertTrue(keys.contains(q.getKey()), m.id + " quick " + q.getKey());
            }
        }
        MethodSpec zs = NativeBridge.method("zs_n2n");
        ParamSpec steps = null;
        for (ParamSpec p : zs.params) if (p.key.equals("steps")) steps = p;
        assertTrue(Double.parseDouble(zs.quick.get("steps")) < steps.defaultNumber, "zs_n2n's quick steps");
        // The dialog's unit labels are the descriptor's.
        ParamSpec gain = null;
        for (ParamSpec p : NativeBridge.method("bm3d").params) if (p.key.equals("gain")) gain = p;
        assertEquals("grey levels/photon", gain.unitSuffix());
        assertEquals("", steps.unitSuffix());
    }

    @Test
    void everyMethodDenoisesAndLeavesTheInputAlone() {
        float[] px = noisy(24 * 20, 1, 5);
        float[] copy = px.clone();
        for (MethodSpec m : NativeBridge.methods()) {
            String[] info = new String[1];
            float[] out = NativeBridge.denoise(m.id, px, DIMS, null, null, "cpu", info);
            assertEquals(px.length, out.length, m.id);
            for (float v : out) assertTrue(Float.isFinite(v), m.id);
            assertTrue(info[0].startsWith("CPU"), info[0]);
            assertArrayEquals(copy, px, m.id + " modified its input");
        }
    }

    @Test
    void constantStackIsUnchangedIn3d() {
        float[] px = new float[10 * 9 * 4];
        java.util.Arrays.fill(px, 777f);
        float[] out = NativeBridge.denoise("gaussian", px, new int[] {10, 9, 4}, new String[] {"sigma_z"},
                new String[] {"1"}, null, null);
        for (float v : out) assertEquals(777f, v, 1e-3f);
    }

    @Test
    void resolveFillsEveryDefault() {
        String opts = NativeBridge.resolve("nl_means", noisy(480, 2, 5), DIMS, new String[] {"h"}, new String[] {"3"});
        Map<String, String> m = parse(opts);
        assertEquals("3", m.get("h"));
        for (ParamSpec p : NativeBridge.method("nl_means").params) assertNotNull(m.get(p.key), p.key);
    }

    @Test
    void tuneChoosesTheStrengthAndKeepsFixedValues() {
        int[] dims = {64, 64, 1};
        float[] img = noisy(64 * 64, 7, 5);
        Map<String, String> m = parse(NativeBridge.tune("total_variation", img, dims,
                new String[] {"max_iterations"}, new String[] {"50"}));
        assertEquals("50", m.get("max_iterations"));
        double lambda = Double.parseDouble(m.get("lambda"));
        // Searched within 1/8 to 8 times the noise-derived default (the noise is 5).
        assertTrue(lambda > 5.0 / 8 * 0.8 && lambda < 5.0 * 8 * 1.2, "lambda " + lambda);
        for (ParamSpec p : NativeBridge.method("total_variation").params) assertNotNull(m.get(p.key), p.key);
        fails("UnknownMethod", "nope", () -> NativeBridge.tune("nope", img, dims, null, null));
        fails("InvalidInput", "nothing to tune", () -> NativeBridge.tune("total_variation", img, dims,
                new String[] {"lambda"}, new String[] {"3"}));
    }

    @Test
    void residualCheckWarnsWhenStructureIsRemoved() {
        int w = 64, h = 64;
        int[] dims = {w, h, 1};
        float[] img = new float[w * h];
        Random r = new Random(3);
        // Bright squares on a dim ground, noise 5.
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                img[y * w + x] = (float) ((((x / 16) + (y / 16)) % 2 == 0 ? 200 : 100) + 5 * r.nextGaussian());
        // Edge-preserving at its noise-derived defaults: the residual is noise. A wide
        // Gaussian takes the squares' edges with it.
        float[] light = NativeBridge.denoise("nl_means", img, dims, null, null, "cpu", null, 0L);
        float[] heavy = NativeBridge.denoise("gaussian", img, dims, new String[] {"sigma"}, new String[] {"6"}, "cpu", null, 0L);
        assertEquals("", NativeBridge.residualCheck(img, light, dims));
        assertTrue(NativeBridge.residualCheck(img, heavy, dims).contains("removes signal"));
        fails("InvalidArgument", "dims", () -> NativeBridge.residualCheck(img, heavy, new int[] {w, h}));
    }

    @Test
    void noiseEstimateIsWithinTenPercent() {
        double s = NativeBridge.estimateNoise(noisy(128 * 128, 3, 5), new int[] {128, 128, 1});
        assertEquals(5.0, s, 0.5);
    }

    @Test
    void poissonGaussianFitGivesTheCameraOptions() {
        // Flat bands at 16 levels; variance 2 * mean + 25 (gain 2, read noise 5).
        int w = 256, h = 256;
        float[] px = new float[w * h];
        Random r = new Random(3);
        for (int y = 0; y < h; y++) {
            double mean = 100 + 60 * (y / 16);
            for (int x = 0; x < w; x++) px[y * w + x] = (float) (mean + Math.sqrt(2 * mean + 25) * r.nextGaussian());
        }
        Map<String, String> fit = parse(NativeBridge.estimatePoissonGaussian(px, new int[] {w, h, 1}));
        assertEquals("poisson_gaussian", fit.get("noise_model"));
        assertEquals(2.0, Double.parseDouble(fit.get("gain")), 0.2);
        // And the options are accepted as they are by a run.
        String[] keys = fit.keySet().toArray(new String[0]);
        String[] values = new String[keys.length];
        for (int i = 0; i < keys.length; i++) values[i] = fit.get(keys[i]);
        assertEquals(w * h, NativeBridge.denoise("gaussian", px, new int[] {w, h, 1}, keys, values, "cpu", null).length);
        fails("InvalidInput", "", () -> NativeBridge.estimatePoissonGaussian(new float[64], new int[] {8, 8, 1}));
    }

    @Test
    void imageInputsTravelWithTheJobAndAreChecked() {
        MethodSpec rl = NativeBridge.method("richardson_lucy");
        assertEquals(1, rl.images.size());
        MethodSpec.ImageInput in = rl.images.get(0);
        assertEquals("psf_image", in.key);
        assertEquals("psf", in.whenKey);
        assertEquals("image", in.whenValue);
        float[] px = noisy(480, 6, 2);
        String[] keys = {"psf", "iterations"};
        String[] values = {"image", "5"};
        // A 3x3 box PSF given as an image, and the same PSF without it: refused by name.
        float[] box = new float[9];
        java.util.Arrays.fill(box, 1f);
        Images psf = new Images.Builder().put("psf_image", box, new int[] {3, 3, 1}).build();
        float[] out = NativeBridge.denoise("richardson_lucy", px, DIMS, keys, values, psf, "cpu", null, 0L);
        assertEquals(px.length, out.length);
        assertFalse(java.util.Arrays.equals(px, out));
        fails("InvalidParamValue", "psf_image", () -> NativeBridge.denoise("richardson_lucy", px, DIMS, keys, values, "cpu", null));
        assertTrue(NativeBridge.resolve("richardson_lucy", px, DIMS, keys, values, psf).contains("psf=image"));
        // Bad image arrays: named, and the library keeps working.
        fails("InvalidArgument", "all be null",
                () -> NativeBridge.denoise("richardson_lucy", px, DIMS, keys, values,
                        Images.raw(new String[] {"psf_image"}, null, null), "cpu", null, 0L));
        fails("InvalidArgument", "1 image keys but 2 pixel arrays",
                () -> NativeBridge.denoise("richardson_lucy", px, DIMS, keys, values,
                        Images.raw(new String[] {"psf_image"}, new float[2][], new int[1][]), "cpu", null, 0L));
        fails("InvalidArgument", "image `psf_image`: pixels has 9 values",
                () -> NativeBridge.denoise("richardson_lucy", px, DIMS, keys, values,
                        Images.raw(new String[] {"psf_image"}, new float[][] {box}, new int[][] {{4, 4, 1}}), "cpu", null, 0L));
        fails("InvalidArgument", "null key",
                () -> NativeBridge.denoise("richardson_lucy", px, DIMS, keys, values,
                        Images.raw(new String[] {null}, new float[][] {box}, new int[][] {{3, 3, 1}}), "cpu", null, 0L));
        fails("UnknownParam", "takes no image",
                () -> NativeBridge.denoise("gaussian", px, DIMS, null, null, psf, "cpu", null, 0L));
        assertArrayEquals(out, NativeBridge.denoise("richardson_lucy", px, DIMS, keys, values, psf, "cpu", null, 0L));
    }

    @Test
    void badArraysAreReported() {
        float[] px = noisy(480, 4, 5);
        fails("InvalidArgument", "pixels is null", () -> NativeBridge.denoise("gaussian", null, DIMS, null, null, null, null));
        fails("InvalidArgument", "dims is null", () -> NativeBridge.denoise("gaussian", px, null, null, null, null, null));
        fails("InvalidArgument", "expected 3", () -> NativeBridge.denoise("gaussian", px, new int[] {24, 20}, null, null, null, null));
        fails("InvalidArgument", "negative", () -> NativeBridge.denoise("gaussian", px, new int[] {-24, -20, 1}, null, null, null, null));
        fails("InvalidArgument", "needs", () -> NativeBridge.denoise("gaussian", px, new int[] {25, 20, 1}, null, null, null, null));
        fails("InvalidArgument", "needs", () -> NativeBridge.denoise("gaussian", px, new int[] {65536, 65536, 65536}, null, null, null, null));
        fails("InvalidArgument", "null", () -> NativeBridge.denoise(null, px, DIMS, null, null, null, null));
        fails("InvalidArgument", "both", () -> NativeBridge.denoise("gaussian", px, DIMS, new String[] {"sigma"}, null, null, null));
        fails("InvalidArgument", "1 keys but 2 values",
                () -> NativeBridge.denoise("gaussian", px, DIMS, new String[] {"sigma"}, new String[] {"1", "2"}, null, null));
        fails("InvalidArgument", "null key",
                () -> NativeBridge.denoise("gaussian", px, DIMS, new String[] {null}, new String[] {"1"}, null, null));
        fails("InvalidArgument", "pixels is null", () -> NativeBridge.estimateNoise(null, DIMS));
    }

    @Test
    void badImagesAndParametersAreReported() {
        float[] px = noisy(480, 5, 5);
        float[] nan = px.clone();
        nan[30] = Float.NaN;
        fails("InvalidInput", "pixel (x=6, y=1, z=0) is NaN", () -> NativeBridge.denoise("bilateral", nan, DIMS, null, null, null, null));
        fails("InvalidInput", "empty", () -> NativeBridge.denoise("gaussian", new float[0], new int[] {0, 0, 1}, null, null, null, null));
        fails("InvalidInput", "at least 2x2", () -> NativeBridge.denoise("gaussian", new float[1], new int[] {1, 1, 1}, null, null, null, null));
        fails("UnknownMethod", "gaussian", () -> NativeBridge.denoise("wiener", px, DIMS, null, null, null, null));
        fails("UnknownParam", "sigma_z", () -> NativeBridge.denoise("gaussian", px, DIMS, new String[] {"radius"}, new String[] {"1"}, null, null));
        fails("ParamOutOfRange", "parameter `sigma` = 51 is outside [0, 50]",
                () -> NativeBridge.denoise("gaussian", px, DIMS, new String[] {"sigma"}, new String[] {"51"}, null, null));
        fails("InvalidParamValue", "a number",
                () -> NativeBridge.denoise("gaussian", px, DIMS, new String[] {"sigma"}, new String[] {"wide"}, null, null));
        fails("InvalidParamValue", "one of replicate",
                () -> NativeBridge.denoise("gaussian", px, DIMS, new String[] {"border"}, new String[] {"constant"}, null, null));
        fails("InvalidParamValue", "one of auto, cpu, gpu", () -> NativeBridge.denoise("gaussian", px, DIMS, null, null, "cuda", null));
    }

    @Test
    void panicsBecomeExceptionsAndTheLibraryStaysUsable() {
        assertEquals(0, NativeBridge.selfTest(0));
        fails("Internal", "self-test panic number 1", () -> NativeBridge.selfTest(1));
        fails("Internal", "self-test panic", () -> NativeBridge.selfTest(2));
        fails("Cancelled", "cancelled", () -> NativeBridge.selfTest(3));
        float[] out = NativeBridge.denoise("gaussian", noisy(480, 6, 5), DIMS, null, null, "cpu", null);
        assertEquals(480, out.length);
    }

    @Test
    void thousandsOfMixedCallsKeepTheJvmAlive() {
        Random r = new Random(7);
        int ok = 0;
        for (int i = 0; i < 3000; i++) {
            int w = r.nextInt(6) - 1, h = r.nextInt(6) - 1, d = r.nextInt(3);
            int len = Math.max(0, w) * Math.max(0, h) * d + (r.nextInt(4) == 0 ? 1 : 0);
            float[] px = noisy(len, i, 3);
            if (len > 0 && r.nextInt(5) == 0) px[r.nextInt(len)] = Float.POSITIVE_INFINITY;
            String method = new String[] {"gaussian", "bilateral", "nl_means", "nope"}[r.nextInt(4)];
            String[] keys = r.nextBoolean() ? null : new String[] {"sigma", "h", "patch_radius", "zz"}[r.nextInt(4)].split(",");
            String[] vals = keys == null ? null : new String[] {new String[] {"1", "-3", "nan", "1e300", "x"}[r.nextInt(5)]};
            try {
                NativeBridge.denoise(method, px, new int[] {w, h, d}, keys, vals, "cpu", null);
                ok++;
            } catch (DenoiseKitException e) {
                assertFalse(e.getMessage().isEmpty());
                assertFalse(e.getKind().equals("Internal"), e.getMessage());
            }
        }
        assertTrue(ok > 0, "no call succeeded");
        assertEquals(480, NativeBridge.denoise("nl_means", noisy(480, 8, 5), DIMS, null, null, "cpu", null).length);
    }

    @Test
    void cancelStopsARunningJobAndLeavesNoResult() throws Exception {
        // A job that runs for seconds (1024^2 NL-means, search window 31x31), cancelled
        // from another thread shortly after it starts.
        final int n = 1024;
        final float[] px = noisy(n * n, 9, 5);
        final long job = NativeBridge.newJob();
        final Object[] result = new Object[1];
        Thread worker = new Thread(() -> {
            try {
                result[0] = NativeBridge.denoise("nl_means", px, new int[] {n, n, 1}, new String[] {"search_radius"},
                        new String[] {"15"}, "cpu", null, job);
            } catch (DenoiseKitException e) {
                result[0] = e;
            }
        });
        assertEquals(-1.0, NativeBridge.progress(job), "a job not started has no progress");
        worker.start();
        double seen = -1;
        for (int i = 0; i < 400 && seen < 0; i++) {
            Thread.sleep(5);
            seen = NativeBridge.progress(job);
        }
        assertTrue(seen >= 0 && seen <= 1, "progress of a running job: " + seen);
        boolean cancelled = NativeBridge.cancel(job);
        assertTrue(cancelled, "the job was never seen running");
        worker.join(20000);
        assertFalse(worker.isAlive(), "cancel did not stop the job");
        assertTrue(result[0] instanceof DenoiseKitException, "a cancelled job must not return pixels");
        assertEquals("Cancelled", ((DenoiseKitException) result[0]).getKind());
        assertFalse(NativeBridge.cancel(job), "a finished job is no longer cancellable");
        assertFalse(NativeBridge.cancel(-42), "unknown ids are ignored");
        assertEquals(-1.0, NativeBridge.progress(job), "a finished job has no progress");
        assertEquals(-1.0, NativeBridge.progress(-42));
    }

    @Test
    void aTrainingJobReportsItsLossWhileItRuns() throws Exception {
        // What the panel shows beside its progress bar while the learned method trains.
        final int n = 256;
        final float[] px = noisy(n * n, 9, 7);
        final long job = NativeBridge.newJob();
        final Object[] result = new Object[1];
        Thread worker = new Thread(() -> {
            try {
                result[0] = NativeBridge.denoise("zs_n2n", px, new int[] {n, n, 1}, new String[] {"steps"},
                        new String[] {"100000"}, "cpu", null, job);
            } catch (DenoiseKitException e) {
                result[0] = e;
            }
        });
        assertEquals("", NativeBridge.note(job), "a job not started says nothing");
        worker.start();
        String note = "";
        for (int i = 0; i < 2000 && !note.contains("loss"); i++) {
            Thread.sleep(5);
            note = NativeBridge.note(job);
        }
        assertTrue(note.matches("training step \\d+/100000: loss [0-9.e-]+ \\(started at [0-9.e-]+\\)"), note);
        // What the current weights make of the image, for a preview that watches it train.
        float[] interim = null;
        for (int i = 0; i < 4000 && interim == null; i++) {
            Thread.sleep(5);
            interim = NativeBridge.interim(job);
        }
        assertNotNull(interim, "no intermediate result within 20 s");
        assertEquals(n * n, interim.length);
        double in = 0, out = 0, moved = 0;
        for (int i = 0; i < px.length; i++) {
            assertTrue(Float.isFinite(interim[i]));
            in += px[i];
            out += interim[i];
            moved += Math.abs(interim[i] - px[i]);
        }
        assertEquals(in / px.length, out / px.length, 0.05 * Math.abs(in / px.length) + 1, "on the image's scale");
        assertTrue(moved > 0, "the network changed nothing");
        assertTrue(NativeBridge.cancel(job), "the job was never seen running");
        worker.join(20000);
        assertFalse(worker.isAlive(), "cancel did not stop the training");
        assertTrue(result[0] instanceof DenoiseKitException, "a cancelled job must not return pixels");
        assertEquals("", NativeBridge.note(job), "a finished job says nothing");
        assertEquals("", NativeBridge.note(-42));
        assertNull(NativeBridge.interim(job), "a finished job has no intermediate result");
        assertNull(NativeBridge.interim(-42));
    }

    @Test
    void tuneAndRankAreCancellableJobs() throws Exception {
        final int n = 512;
        final float[] px = noisy(n * n, 9, 5);
        for (final boolean rank : new boolean[] {false, true}) {
            final long job = NativeBridge.newJob();
            final Object[] result = new Object[1];
            Thread worker = new Thread(() -> {
                try {
                    result[0] = rank ? NativeBridge.rank(px, new int[] {n, n, 1}, "nl_means,bm3d", job)
                            : NativeBridge.tune("bm3d", px, new int[] {n, n, 1}, null, null, null, job);
                } catch (DenoiseKitException e) {
                    result[0] = e;
                }
            });
            worker.start();
            boolean cancelled = false;
            for (int i = 0; i < 400 && !cancelled; i++) {
                Thread.sleep(5);
                cancelled = NativeBridge.cancel(job);
            }
            assertTrue(cancelled, (rank ? "rank" : "tune") + " was never seen running");
            worker.join(20000);
            assertFalse(worker.isAlive(), "cancel did not stop " + (rank ? "rank" : "tune"));
            assertTrue(result[0] instanceof DenoiseKitException, "a cancelled search returns nothing");
            assertEquals("Cancelled", ((DenoiseKitException) result[0]).getKind());
        }
    }

    @Test
    void backendsAreTheLibrarysNames() {
        List<String> names = java.util.Arrays.asList(NativeBridge.backends());
        assertEquals("auto", names.get(0), "auto is the default and comes first");
        assertTrue(names.contains("cpu") && names.contains("gpu"), names.toString());
    }

    @Test
    void supportIsTheMethodsReach() {
        assertArrayEquals(new int[] {6, 6, 0}, NativeBridge.support("gaussian", new String[] {"sigma", "sigma_z"},
                new String[] {"1.5", "0"}));
        assertArrayEquals(new int[] {8, 8, 3}, NativeBridge.support("nl_means",
                new String[] {"h", "sigma", "patch_radius", "search_radius", "patch_radius_z", "search_radius_z"},
                new String[] {"1", "1", "2", "6", "1", "2"}));
        fails("InvalidInput", "noise-dependent", () -> NativeBridge.support("nl_means", null, null));
    }

    static Map<String, String> parse(String options) {
        Map<String, String> m = new java.util.HashMap<String, String>();
        for (String kv : options.trim().split("\\s+")) {
            int eq = kv.indexOf('=');
            m.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return m;
    }
}
