package org.denoisekit;

/**
 * Run by tests/jvm.rs in a JVM with a small heap: the input fits, the result does not. The
 * JVM's own OutOfMemoryError must reach the caller (Fiji then says to raise its memory),
 * not a DenoiseKitException saying only that a JNI call failed.
 */
public final class OutOfMemoryCheck {
    public static void main(String[] args) {
        int w = 4096, h = 3072;
        float[] px = new float[w * h];
        for (int i = 0; i < px.length; i++) px[i] = i % 251;
        try {
            float[] out = NativeBridge.denoise("gaussian", px, new int[] {w, h, 1}, new String[] {"sigma", "noise_model"},
                    new String[] {"1", "gaussian"}, null, "cpu", null, 0L);
            System.out.println("finished: " + out.length + " (input " + px.length + ")");
        } catch (OutOfMemoryError e) {
            System.out.println("thrown: OutOfMemoryError");
        } catch (DenoiseKitException e) {
            System.out.println("thrown: DenoiseKitException " + e.getKind() + ": " + e.getMessage());
        }
    }
}
