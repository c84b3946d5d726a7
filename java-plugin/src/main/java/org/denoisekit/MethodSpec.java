package org.denoisekit;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** One denoising method, as described by the native registry. */
public final class MethodSpec {
    public final String id;
    public final String name;
    public final String category;
    /** "denoise", "deconvolve" or "background": what the output is. */
    public final String kind;
    /** The heading methods of this kind are listed under ("Denoisers"). */
    public final String kindTitle;
    public final String summary;
    public final List<String> references;
    public final boolean supports3d;
    public final boolean gpu;
    public final List<ParamSpec> params;
    /** Images the method takes besides its input (most take none). */
    public final List<ImageInput> images;
    /**
     * Settings that keep the method's whole code path but make it cheap (fewer training
     * steps or iterations): for untimed warm-up runs, never for a result.
     */
    public final Map<String, String> quick;

    /** An image a method takes besides its input, such as a measured PSF. */
    public static final class ImageInput {
        public final String key;
        public final String label;
        public final String help;
        /** The parameter and option that need the image ({@code psf}, {@code image}). */
        public final String whenKey;
        public final String whenValue;

        @SuppressWarnings("unchecked")
        ImageInput(Map<String, Object> m) {
            key = (String) m.get("key");
            label = (String) m.get("label");
            help = (String) m.get("help");
            List<Object> when = (List<Object>) m.get("when");
            whenKey = (String) when.get(0);
            whenValue = (String) when.get(1);
        }

        /**
         * Whether these parameter values choose the image (the library refuses an image
         * its switch does not choose, so only chosen ones are sent or recorded).
         */
        public boolean chosenBy(String[] keys, String[] values) {
            for (int j = 0; j < keys.length; j++) {
                if (keys[j].equals(whenKey) && values[j].equals(whenValue)) return true;
            }
            return false;
        }
    }

    @SuppressWarnings("unchecked")
    MethodSpec(Map<String, Object> m) {
        id = (String) m.get("id");
        name = (String) m.get("name");
        category = (String) m.get("category");
        kind = (String) m.get("kind");
        kindTitle = (String) m.get("kind_title");
        summary = (String) m.get("summary");
        references = new ArrayList<String>();
        for (Object r : (List<Object>) m.get("references")) references.add((String) r);
        boolean three = false;
        for (Object d : (List<Object>) m.get("dims")) three |= ((Double) d).intValue() == 3;
        supports3d = three;
        gpu = Boolean.TRUE.equals(m.get("gpu"));
        params = new ArrayList<ParamSpec>();
        for (Object p : (List<Object>) m.get("params")) params.add(new ParamSpec((Map<String, Object>) p));
        images = new ArrayList<ImageInput>();
        for (Object i : (List<Object>) m.get("images")) images.add(new ImageInput((Map<String, Object>) i));
        quick = new java.util.TreeMap<String, String>();
        for (Map.Entry<String, Object> e : ((Map<String, Object>) m.get("quick")).entrySet()) {
            quick.put(e.getKey(), (String) e.getValue());
        }
    }

    /** Parses the JSON returned by {@link NativeBridge#describe()}. */
    @SuppressWarnings("unchecked")
    public static List<MethodSpec> parseRegistry(String json) {
        List<MethodSpec> out = new ArrayList<MethodSpec>();
        for (Object m : (List<Object>) Json.parse(json)) out.add(new MethodSpec((Map<String, Object>) m));
        return out;
    }

    public ParamSpec param(String key) {
        for (ParamSpec p : params) if (p.key.equals(key)) return p;
        return null;
    }
}
