package org.denoisekit;

/**
 * Every failure reported by the native library: a stable machine-readable kind (for
 * example "ParamOutOfRange", "InvalidInput", "Internal") and a message meant for users.
 */
public class DenoiseKitException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String kind;

    public DenoiseKitException(String kind, String message) {
        super(message);
        this.kind = kind;
    }

    /** The error kind, stable across versions (one per Rust error variant). */
    public String getKind() {
        return kind;
    }

    @Override
    public String toString() {
        return "DenoiseKitException[" + kind + "]: " + getMessage();
    }
}
