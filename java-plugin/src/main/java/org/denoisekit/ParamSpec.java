package org.denoisekit;

import java.util.List;
import java.util.Map;

/** One parameter of a method, as described by the native registry (never written by hand). */
public final class ParamSpec {
    public final String key;
    public final String label;
    /**
     * "float", "int", "choice", "file" (a path; empty for none) or "region" (x,y,width,height
     * in pixels; empty for the whole image).
     */
    public final String kind;
    /** Bounds; NaN where open (floats) or not applicable (choices). */
    public final double min;
    public final double max;
    /** Fixed default, or NaN when the default is a multiple of the noise estimate. */
    public final double defaultNumber;
    /** The multiple of the estimated noise used as default, or NaN. */
    public final double defaultTimesNoise;
    public final String defaultChoice;
    public final String[] options;
    /** "linear" or "log". */
    public final String scale;
    /** "pixels", "intensity", "intensity_per_photon", "count", "nanometres" or "none". */
    public final String unit;
    private final String unitSuffix;
    public final String help;
    /** Whether this is the method's strength, searched by the self-supervised Auto. */
    public final boolean tunable;
    /** Acts along z only: it means nothing on a 2D image. */
    public final boolean alongZ;
    /** {key, value}: used only when parameter key has that value; null if always used. */
    public final String[] when;
    /**
     * A file the method writes: left empty in previews and trial runs, where it would
     * hold the result of a crop.
     */
    public final boolean writes;
    /**
     * Means something only for the whole image (a file the method writes, a region in the
     * image's coordinates): left empty in previews and trial runs, which see a crop.
     */
    public final boolean wholeImageOnly;

    ParamSpec(Map<String, Object> m) {
        key = (String) m.get("key");
        label = (String) m.get("label");
        kind = (String) m.get("kind");
        min = num(m.get("min"));
        max = num(m.get("max"));
        Object d = m.get("default");
        defaultNumber = d instanceof Double ? (Double) d : Double.NaN;
        defaultChoice = d instanceof String ? (String) d : null;
        defaultTimesNoise = num(m.get("default_times_noise"));
        Object o = m.get("options");
        if (o instanceof List) {
            List<?> l = (List<?>) o;
            options = l.toArray(new String[0]);
        } else {
            options = new String[0];
        }
        scale = (String) m.get("scale");
        unit = (String) m.get("unit");
        unitSuffix = m.get("unit_suffix") instanceof String ? (String) m.get("unit_suffix") : "";
        help = (String) m.get("help");
        tunable = Boolean.TRUE.equals(m.get("tunable"));
        alongZ = Boolean.TRUE.equals(m.get("along_z"));
        Object w = m.get("when");
        when = w instanceof List ? ((List<?>) w).toArray(new String[0]) : null;
        writes = Boolean.TRUE.equals(m.get("writes"));
        wholeImageOnly = Boolean.TRUE.equals(m.get("whole_image_only"));
    }

    private static double num(Object o) {
        return o instanceof Double ? (Double) o : Double.NaN;
    }

    public boolean isChoice() {
        return "choice".equals(kind);
    }

    /**
     * {@code v} as this parameter spells it: a choice in the case of its option (the library
     * reads Auto as auto, and the plugin's own comparisons must too), anything else as given.
     */
    public String spelled(String v) {
        if (isChoice()) {
            for (String o : options) {
                if (o.equalsIgnoreCase(v)) return o;
            }
        }
        return v;
    }

    public boolean isFile() {
        return "file".equals(kind);
    }

    public boolean isRegion() {
        return "region".equals(kind);
    }

    /** A value typed as text (a path, a rectangle) that the library checks when it runs. */
    public boolean isText() {
        return isFile() || isRegion();
    }

    public boolean isInt() {
        return "int".equals(kind);
    }

    /** Whether a value lies in the range (always true for choices, files and regions). */
    public boolean inRange(double v) {
        if (isChoice() || isText()) return true;
        if (Double.isNaN(v) || Double.isInfinite(v)) return false;
        if (!Double.isNaN(min) && v < min) return false;
        if (!Double.isNaN(max) && v > max) return false;
        return !isInt() || v == Math.rint(v);
    }

    /** "[0, 50]" or "[0, inf)" for messages. */
    public String rangeText() {
        String lo = Double.isNaN(min) ? "-inf" : fmt(min);
        String hi = Double.isNaN(max) ? "inf)" : fmt(max) + "]";
        return "[" + lo + ", " + hi;
    }

    public static String fmt(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e15) return Long.toString((long) v);
        return Double.toString(v);
    }

    /** The unit as a short suffix for dialogs ("px", "grey levels"), or "": the descriptor's. */
    public String unitSuffix() {
        return unitSuffix;
    }
}
