package org.denoisekit.ij;

import ij.IJ;
import org.denoisekit.NativeBridge;

/**
 * Cancels a native job when the thread that waits for it is interrupted (a preview whose
 * settings are stale), when the user presses Esc or when {@link #cancel()} is called, and
 * forwards the job's progress. Native code cannot see Java interrupts or keys, so a small
 * daemon thread polls and forwards them.
 */
final class CancelWatch implements AutoCloseable {
    /** Receives the fraction of the whole run done, in [0, 1], and the job's notes. */
    interface Progress {
        void update(double fraction);

        /** What the job says about how it is going (a training loss); called before update. */
        default void note(String text) {
        }

        /**
         * Whether to fetch the job's intermediate results ({@link #interim}): asking makes
         * the job spend time on them, so only a view that shows them says yes.
         */
        default boolean wantsInterim() {
            return false;
        }

        /** An intermediate result of the running native call, laid out as its result. */
        default void interim(float[] pixels) {
        }
    }

    private static final long POLL_MS = 10;
    /** Progress is forwarded at most this often: ImageJ's bar repaints on every call. */
    private static final long PROGRESS_MS = 100;
    final long job = NativeBridge.newJob();
    private final Thread watcher;
    private volatile boolean done;
    private volatile boolean cancelled;
    /** A run of several native calls: which call of how many runs now. */
    private volatile int stage;
    private volatile int stages = 1;
    /** A progress report failed once: said, and no intermediate results fetched since. */
    private boolean reportFailed;

    CancelWatch(Thread waiter, boolean escapeCancels) {
        this(waiter, escapeCancels, null);
    }

    CancelWatch(final Thread waiter, final boolean escapeCancels, final Progress progress) {
        // ImageJ clears Esc only when a menu command starts: an Esc that stopped the last
        // job would stop every later one the panel starts.
        if (escapeCancels) IJ.resetEscape();
        watcher = new Thread(new Runnable() {
            @Override
            public void run() {
                long lastReport = 0;
                while (!done) {
                    if (cancelled || waiter.isInterrupted() || (escapeCancels && IJ.escapePressed())) {
                        cancelled = true;
                        NativeBridge.cancel(job);
                    }
                    long now = System.currentTimeMillis();
                    if (progress != null && now - lastReport >= PROGRESS_MS) {
                        lastReport = now;
                        try {
                            double f = NativeBridge.progress(job);
                            String note = f >= 0 ? NativeBridge.note(job) : "";
                            if (!note.isEmpty()) progress.note(note);
                            float[] interim = f >= 0 && !reportFailed && progress.wantsInterim()
                                    ? NativeBridge.interim(job) : null;
                            if (interim != null) progress.interim(interim);
                            if (f >= 0) progress.update((stage + f) / stages);
                        } catch (RuntimeException | OutOfMemoryError e) {
                            // A report that failed (an intermediate result the heap cannot
                            // hold, a stack changed under the view) is dropped: the watch
                            // goes on, or Stop and Esc would no longer reach the job. Said
                            // once; intermediate results are not fetched again.
                            if (!reportFailed) IJ.log("DenoiseKit: a progress report failed, the job goes on: " + e);
                            reportFailed = true;
                        }
                    }
                    try {
                        Thread.sleep(POLL_MS);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }
        }, "DenoiseKit job watch");
        watcher.setDaemon(true);
        watcher.start();
    }

    /** The next native call is call {@code i} (0-based) of {@code n}. */
    void stage(int i, int n) {
        stages = Math.max(1, n);
        stage = i;
    }

    /** Stops the job at its next checkpoint (it then throws kind "Cancelled"). */
    void cancel() {
        cancelled = true;
        NativeBridge.cancel(job);
    }

    boolean wasCancelled() {
        return cancelled;
    }

    /**
     * Stops watching, once the watcher has handed on everything it read: a note or an
     * intermediate result of this job must not reach the view after the caller moved on
     * (cleared the progress line, started the next preview).
     */
    @Override
    public void close() {
        done = true;
        watcher.interrupt();
        if (Thread.currentThread() == watcher) return;
        try {
            watcher.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
