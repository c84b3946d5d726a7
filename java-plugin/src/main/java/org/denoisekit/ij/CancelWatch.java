package org.denoisekit.ij;

import ij.IJ;
import org.denoisekit.NativeBridge;

/**
 * Cancels a native job when the thread that waits for it is interrupted (ImageJ does
 * that to a preview whose settings are stale) or when the user presses Esc. Native code
 * cannot see Java interrupts, so a small daemon thread polls and forwards them.
 */
final class CancelWatch implements AutoCloseable {
    private static final long POLL_MS = 10;
    final long job = NativeBridge.newJob();
    private final Thread watcher;
    private volatile boolean done;

    CancelWatch(final Thread waiter, final boolean escapeCancels) {
        watcher = new Thread(new Runnable() {
            @Override
            public void run() {
                while (!done) {
                    if (waiter.isInterrupted() || (escapeCancels && IJ.escapePressed())) {
                        NativeBridge.cancel(job);
                        return;
                    }
                    try {
                        Thread.sleep(POLL_MS);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }
        }, "DenoiseKit cancel watch");
        watcher.setDaemon(true);
        watcher.start();
    }

    @Override
    public void close() {
        done = true;
        watcher.interrupt();
    }
}
