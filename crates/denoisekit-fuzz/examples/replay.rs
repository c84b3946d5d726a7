//! Prints the job a `run_method` fuzz input describes and what the library returns:
//! `cargo run -p denoisekit-fuzz --example replay -- fuzz/artifacts/run_method/crash-...`.

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: replay <run_method input>");
    let data = std::fs::read(&path).expect("read the input");
    let (m, values, input) = denoisekit_fuzz::decode_job(&data);
    println!("{} {} on {:?}", m.id, values.to_options(), input.dim());
    for (k, image) in values.images() {
        println!("{k}: {image:?}");
    }
    println!("input: {input:?}");
    match denoisekit_core::run(
        m.id,
        input.view(),
        &values,
        &denoisekit_core::Control::new(),
    ) {
        Ok(out) => println!("output: {out:?}"),
        Err(e) => println!("error ({}): {e}", e.kind()),
    }
}
