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
    public final String summary;
    public final List<String> references;
    public final boolean supports3d;
    public final boolean gpu;
    public final List<ParamSpec> params;

    @SuppressWarnings("unchecked")
    MethodSpec(Map<String, Object> m) {
        id = (String) m.get("id");
        name = (String) m.get("name");
        category = (String) m.get("category");
        kind = (String) m.get("kind");
        summary = (String) m.get("summary");
        references = new ArrayList<String>();
        for (Object r : (List<Object>) m.get("references")) references.add((String) r);
        boolean three = false;
        for (Object d : (List<Object>) m.get("dims")) three |= ((Double) d).intValue() == 3;
        supports3d = three;
        gpu = Boolean.TRUE.equals(m.get("gpu"));
        params = new ArrayList<ParamSpec>();
        for (Object p : (List<Object>) m.get("params")) params.add(new ParamSpec((Map<String, Object>) p));
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
