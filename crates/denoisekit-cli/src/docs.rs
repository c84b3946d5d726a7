//! `denoisekit methods`: the registry as text, JSON or the Markdown of docs/methods.md.

use crate::*;

/// One parameter as a line of `denoisekit methods`.
pub(crate) fn text_row(p: &ParamSpec) -> String {
    format!(
        "    {:<16} {:<22} default {:<12} {:<18} {}",
        p.key,
        describe_range(&p.kind),
        describe_default(&p.kind),
        p.unit.suffix(),
        p.help_text()
    )
}

/// One parameter as a row of docs/methods.md.
pub(crate) fn markdown_row(p: &ParamSpec) -> String {
    format!(
        "| `{}` | {} | {} | {} | {} |\n",
        p.key,
        describe_range(&p.kind),
        describe_default(&p.kind),
        p.unit.suffix(),
        p.help_text()
    )
}

pub(crate) fn describe_default(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Float {
            default: DefaultValue::Fixed(v),
            ..
        } => fmt_num(*v),
        ParamKind::Float {
            default: DefaultValue::TimesNoise(k),
            ..
        } => format!("{} × noise", fmt_num(*k)),
        ParamKind::Int { default, .. } => default.to_string(),
        ParamKind::Choice { default, .. } => default.to_string(),
        ParamKind::File { .. } => "none".to_string(),
        ParamKind::Region => "the whole image".to_string(),
    }
}

pub(crate) fn describe_range(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Float { min, max, .. } => format!("[{}, {}]", fmt_num(*min), fmt_num(*max)),
        ParamKind::Int { min, max, .. } => format!("{min}..={max}"),
        ParamKind::Choice { options, .. } => options.join(", "),
        ParamKind::File { writes: true } => "a file to write".to_string(),
        ParamKind::File { writes: false } => "a file to read".to_string(),
        ParamKind::Region => "x,y,width,height in pixels".to_string(),
    }
}

pub(crate) fn methods(format: Format) -> CliResult<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(registry())?),
        Format::Text => {
            for m in registry() {
                println!("{} — {} ({}; {})", m.id, m.name, m.category, m.dims.label());
                println!("    {}", m.summary);
                for p in m.params {
                    println!("{}", text_row(p));
                }
                for i in m.images {
                    println!("{}", image_row(i, false));
                }
                if m.kind == MethodKind::Denoise {
                    println!("    (and the noise model shared by every denoiser, below)");
                }
                println!();
            }
            println!("Noise model, shared by every denoiser:");
            for p in &denoisekit_core::vst::NOISE_MODEL_PARAMS {
                println!("{}", text_row(p));
            }
        }
        Format::Markdown => print!("{}", methods_markdown(registry())),
    }
    Ok(())
}

/// A method's image input as a row of `methods`' text or markdown table.
pub(crate) fn image_row(i: &denoisekit_core::ImageInput, markdown: bool) -> String {
    let (when, opt) = i.when;
    let help = format!(
        "{} Used with {when}={opt}. On the command line: `{}=file.tif`; in ImageJ, an \
         open image.",
        i.help, i.key
    );
    if markdown {
        format!("| `{}` | an image | | | {help} |\n", i.key)
    } else {
        format!("    {:<16} {:<22} {help}", i.key, "an image")
    }
}

/// "2 copies of the image + 0.5 of a plane per plane in flight", as the docs state it.
pub(crate) fn memory_text(m: &memory::Memory) -> String {
    let copies = |n: f32| {
        if n == 1.0 {
            "1 copy".to_string()
        } else {
            format!("{n} copies")
        }
    };
    let mut t = format!("{} of the image", copies(m.volume));
    if m.plane > 0.0 {
        t += &format!(" + {} of a plane per plane in flight", copies(m.plane));
    }
    t + " ([memory budget](robustness.md#memory))"
}

pub(crate) fn tuning_text(m: &MethodDescriptor) -> String {
    let keys: Vec<String> = m
        .params
        .iter()
        .filter(|p| p.tunable)
        .map(|p| match p.when {
            Some((k, v)) => format!("`{}` (with `{k}={v}`)", p.key),
            None => format!("`{}`", p.key),
        })
        .collect();
    if keys.is_empty() {
        return String::new();
    }
    let loss = match m.tune_loss {
        TuneLoss::Masked => "Noise2Self (hidden pixels predicted)",
        TuneLoss::Sure => {
            "Monte-Carlo SURE (the error estimated from the noise level and a second, perturbed run)"
        }
    };
    format!(
        " Self-supervised tuning ([`tune`](macros.md)) of {}: {loss}.",
        keys.join(", ")
    )
}

/// Whether the method has a GPU kernel, and whether `backend=auto` uses it.
pub(crate) fn gpu_text(m: &MethodDescriptor) -> String {
    match (
        m.gpu_tolerance.is_some(),
        denoisekit_gpu::why_not_auto(m.id),
    ) {
        (false, _) => "not yet".into(),
        (true, None) => "yes".into(),
        (true, Some(why)) => format!(
            "with `backend=gpu` (`auto` keeps it on the CPU: {why}; [GPU benchmarks](benchmarks.md#gpu))"
        ),
    }
}

pub(crate) fn methods_markdown(reg: &[&MethodDescriptor]) -> String {
    let mut s = String::from(
        "# Methods\n\nGenerated by `denoisekit methods --format markdown` from the registry.\n",
    );
    for m in reg {
        s += &format!(
            "\n## `{}`: {}\n\n{} Dimensions: {}. GPU: {}. Working memory: {}.{}\n\n| key | range | default | unit | help |\n|---|---|---|---|---|\n",
            m.id,
            m.name,
            m.summary,
            m.dims.label(),
            gpu_text(m),
            memory_text(&m.memory),
            tuning_text(m)
        );
        for p in m.params {
            s += &markdown_row(p);
        }
        for i in m.images {
            s += &image_row(i, true);
        }
        if m.kind == MethodKind::Denoise {
            s += "| | | | | Plus the [noise model](#noise-model-shared-by-every-denoiser) parameters. |\n";
        }
        s += "\nReferences:\n";
        for r in m.references {
            s += &format!("- {r}\n");
        }
    }
    s += "\n## Noise model, shared by every denoiser\n\n\
          With `noise_model=poisson_gaussian` the image is variance-stabilised by the \
          generalized Anscombe transform before denoising and mapped back by its exact \
          unbiased inverse (Mäkitalo & Foi, IEEE TIP 2013, doi:10.1109/TIP.2012.2202675); \
          noise-derived defaults are then measured on the stabilised image, and strengths \
          in grey levels set by hand are read in its units (the noise is 1 there): with \
          `noise_model=auto`, the default, or a camera given without a model, the run warns \
          when that happens.\n\n\
          | key | range | default | unit | help |\n|---|---|---|---|---|\n";
    for p in &denoisekit_core::vst::NOISE_MODEL_PARAMS {
        s += &markdown_row(p);
    }
    s
}
