//! Zero-shot Noise2Noise: a small convolutional network trained on the noisy image itself.
//!
//! No clean data and no pre-trained model: each image trains its own network: `layers`
//! 3x3 convolutions of `width` channels with leaky ReLUs (two in the paper, four by
//! default) and a 1x1 convolution, predicting the noise, which is subtracted; about 5.5k
//! weights with two layers at width 24 (21k at the paper's 48), 5.2k more per further
//! layer (16k at the default four). Each layer widens what the network sees by two
//! pixels, so two see 5x5 pixels, four 9x9.
//! Depth buys quality: on the W2S pairs (diagonal sub-images, below), zero-shot training
//! with four layers scored 0.95 dB above two on average (11 of 12 pairs) at three times the
//! arithmetic (docs/benchmarks.md, "Learned denoiser: network depth"), where a wider
//! network had gained little; per second it buys more than steps (on w2s_010_2, four
//! layers at 400 steps scored 36.95 dB, two layers at 3000 steps on larger patches
//! 35.41 dB in nearly nine times as long). Four is the default since the CPU kernels keep
//! their sums in registers ([`net`]): training on a 512² image and applying to it takes
//! about 15 s on two cores at the default 800 steps (measured before the refinement below),
//! applying saved weights to 512² about 0.8 s with the refinement (the network then runs
//! on the image alone, not on its four mirror images: [`mirror_images`]; about half the
//! time of the four and the refinement, measured in one run). `layers=2`, the paper's
//! network, is about 2.8 times quicker.
//!
//! Each step takes a random patch and pairs of sub-images whose noise is independent
//! when the image's noise is independent between pixels; the network denoising one
//! sub-image is scored against the other (a symmetric Noise2Noise loss). Every pixel
//! contributes to every step, which is why a few hundred Adam steps suffice.
//! The learning rate is halved for the second half of the steps, and the network trained
//! is the mean of the weights over that half (Polyak averaging; Noise2Fast averages its
//! last outputs to the same end): the weights wander about a minimum by the step size,
//! and their mean lies closer to it. On the W2S pairs this mostly steadied training: at
//! 400 steps it lifted the two pairs whose training had ended badly by 1.5 and 1.2 dB
//! and moved the others by −0.2 to +0.3 dB; with twice the steps, the default since,
//! the two together scored 0.44 dB above 400 plain steps, on every pair
//! (docs/benchmarks.md, "Learned denoiser: training steps and weight averaging").
//! `subimages` says which:
//! - `chequerboard` (the default, after Noise2Fast, Lequyer et al. 2022): from each row
//!   the pixels where row + column is even against those where it is odd, and the same
//!   from each column: four images of half the width or half the height, at full
//!   resolution along the other axis and at the image's own noise level.
//! - `diagonal` (Mansour & Heckel's ZS-N2N): the means of the diagonal and of the
//!   anti-diagonal pixel pairs of every 2x2 block, plus a consistency term (denoising then
//!   sub-sampling must agree with sub-sampling then denoising). A mean of two pixels
//!   carries √2 less noise than the image, so the network learns to remove less noise
//!   than it then meets.
//!
//! On the W2S pairs the chequerboard scored 1.6 dB above the diagonal means with four
//! layers, better on every pair (docs/benchmarks.md, "Learned denoiser: which
//! sub-images"), at 1.3 times the time (four passes over half a patch each, against the
//! diagonal's patch and two quarters).
//!
//! The network's output is then refined (`refine`, on by default): BM3D's second stage
//! ([`crate::methods::bm3d::wiener_with_pilot`]) takes it in place of BM3D's own first,
//! hard-thresholded estimate. Patches like each reference patch are found on the
//! network's output within BM3D's 29x29 search window, and the noisy patches are
//! Wiener-filtered together in the 3D transform domain with the network's group spectrum
//! as the signal's power. The network sees 9x9 pixels; the refinement averages blocks
//! matched across the window, which a network trained on one image in seconds did not
//! learn (below: neither a wider view, a larger network nor clean targets closed that gap).
//! The noise is taken as `refine` times the measured noise ([`crate::estimate_sigma`], the
//! defaults' for every method; the factor was chosen on independent noise), not once: the network's output keeps some
//! of each pixel's own noise and errs where the signal is weak, so its spectra overstate
//! the signal's power and a Wiener filter fed them smooths too little (with a pilot error
//! of power E on a coefficient of power S, the filter is right at √(1 + E/S) times the
//! noise). On the 12 W2S pairs the default ([`DEFAULT_REFINE`]) lifted the network's output by 0.81 dB
//! on average (on every pair), to 0.05 dB above BM3D (Auto); on photon noise simulated on
//! three other real images (fluorescence nuclei and pollen, ssTEM) by 0.18 dB, where 1
//! to 1.5 did better (docs/benchmarks.md, "Learned denoiser: Wiener refinement"). It adds
//! BM3D's second stage to the time (about 0.3 s for a 512² image on two cores) and takes
//! away three of the network's four passes over the image, whose average it makes
//! redundant ([`mirror_images`]); both devices refine on the CPU. The interim results a
//! watched training publishes (the Fiji preview while it trains) are the network's output
//! alone; the final result is refined. Each refined plane advances the job's progress as
//! an applied one does.
//!
//! Pick it for structure that repeats across the image (membranes, filaments, textures),
//! where a network learns what the classical priors do not know. It assumes noise that is
//! independent between pixels (check with `denoisekit noise`): with `noise_model =
//! poisson_gaussian` (or `auto`) photon noise is variance-stabilised first. Stacks train
//! one network on patches from every plane and apply it plane by plane (2D kernels).
//!
//! Why this network and not Noise2Fast's own (measured on the real W2S pairs on 2 cores,
//! docs/benchmarks.md, "Learned denoiser: which zero-shot method"): when the choice was
//! made (2026-12-04), Noise2Fast denoised better than the paper's ZS-N2N (2.5 dB on 128²
//! crops, within 0.6 dB of BM3D) but its network of eight 64-channel convolutions, run
//! over the whole image after every step to decide when to stop, took 10 times as long on
//! those crops and 5.1 s per step on a 512² image: 22 to 61 minutes per image at the step
//! counts its stopping rule reached on the crops. CAREamics's Noise2Void was 0.9 dB above
//! the paper's ZS-N2N at 14 times the time. ZS-N2N's small network is the one that trains
//! in seconds on a CPU; Noise2Fast's sub-images, trained on by it, keep much of
//! Noise2Fast's gain: with them, four layers and 800 averaged steps (the defaults since),
//! zs_n2n scored 0.18 dB below Noise2Fast on the crops in 0.39 times its time, and 2.04 dB
//! above Noise2Void on the 512² pairs in a third of its time.
//!
//! The image is normalised to zero mean and unit standard deviation before training, so
//! the learning rate does not depend on its units. Training is deterministic: the same
//! seed gives the same weights, on any machine and any number of threads (sums run in a
//! fixed order, without fused multiply-add). A GPU trains as deterministically on one
//! device (its sums run in a fixed order too), but rounds differently from the CPU, and
//! Adam turns rounding into steps: its result is the CPU's within the stated GPU
//! tolerance, not bit for bit. `backend=cpu` is the choice for bit-identical replays
//! across machines.
//!
//! Supervised training (`training = pairs`): given `target`, a clean capture of the same
//! field (an average of many frames, a long exposure), the same network learns to turn the
//! image into it, on the same patches and mirror images, with half the mean squared
//! difference between `x − net(x)` and the target's patch as the loss (CARE's supervised
//! restoration, with this small network). The target is fitted onto the image's
//! intensities first by least squares (`a · target + b`; under a Poisson–Gaussian model on
//! the grey levels, where the model's gain and offset hold, before it is stabilised as the
//! image is), so a frame average stretched to its own 8-bit range teaches the same
//! network. Train on one pair with `save_weights`, then apply the weights to images taken
//! the same way. The GPU trains towards a target too (the fit is done on the CPU, and
//! both devices train from the same [`Teacher`]: [`with_teacher`]). On the W2S pairs,
//! trained on one field and applied to another of the same channel, it scored as zero-shot
//! training with the same steps does (0.04 dB below on average) and 0.76 dB below BM3D
//! (both measured without the refinement); on
//! four pairs, a network three times as costly trained towards the targets three times as
//! long stayed below BM3D too (docs/benchmarks.md, "Learned denoiser: supervised on pairs",
//! "what clean targets and a larger network buy"). In a PyTorch rebuild of this network
//! ("what limits it"), neither a wider view at the same cost, nor a training signal with
//! no shift between input and target (Recorrupted-to-Recorrupted), nor a network with 6.6
//! times the arithmetic per pixel trained 2.5 times as long (+0.30 dB, 5 times the time)
//! closed the gap alone (measured without the refinement, which was added after). A
//! guess, not isolated then: BM3D averages blocks matched anywhere in its search window,
//! which a small network trained on one image in seconds may not learn; the refinement
//! (above) adds that averaging.
//!
//! Synthetic training (`training = synthetic`, after RLN, Li et al. 2022): without any
//! clean capture, the same supervised loss on generated scenes whose clean version is known
//! ([`crate::methods::scene`]: dots, rings and filaments blurred by a Gaussian PSF of
//! `psf_sigma`), made to look like the image's data ([`synthetic_pair`]): their
//! intensities mapped onto the image's (robust quantiles of both, smoothed), their noise
//! the image's (under a Poisson–Gaussian model drawn with the fitted gain, offset and read
//! noise on the grey levels, then stabilised as the image is; otherwise white noise of the
//! estimated standard deviation). The scenes are 4 planes of 256x256 whatever the image's
//! size (patches no larger than the image's, so that a small image trains as quickly);
//! the image's own pixels are not trained on, only measured. The network learns what
//! structures blurred by that PSF look like under that noise, so `psf_sigma` acts as the
//! strength: narrower than the images' blur, the network keeps noise as detail. `tune`
//! searches it by the masked loss; its trials see the stabilised image under the Gaussian
//! model, as every method's do, so under a Poisson–Gaussian model their scenes are mapped
//! onto the stabilised intensities rather than the grey levels. The scenes are drawn on
//! the CPU; a `backend=gpu` job trains on them on the GPU. On the W2S pairs, with σ
//! chosen by Auto, it scored 0.64 dB below zero-shot training with the same steps and
//! 1.36 dB below BM3D (docs/benchmarks.md, "Learned denoiser: synthetic training"), so zero-shot
//! training is the better choice there.
//!
//! Train once, apply many: `save_weights` writes the trained network to a small file
//! ([`weights`]) and `weights` applies a saved network instead of training, so a batch
//! trains once (with a long budget, if it likes) and denoises each further image in one
//! forward pass. While training, the job's note ([`Control::note`]) says the loss, which
//! the Fiji panel shows beside its progress bar.
//!
//! Cost: `steps · (patch² · 1.5)` pixel passes forward and backward (`patch²` with a
//! supervised loss) at about `9·width²·(layers − 1)` multiply-adds each, then one forward
//! pass over the image; then the refinement, BM3D's second stage (O(N · window² / step²)
//! matching). Unrefined (`refine = 0`), the network runs on the image's four mirror images
//! and averages them instead ([`mirror_images`]).
//! With `backend=gpu` training and the forward passes over the image run on the GPU
//! (`denoisekit-gpu`'s `zs_n2n` and `zs_n2n_train` hosts, through [`train_or_load_with`]
//! and [`Schedule`]).
//!
//! # References
//! Y. Mansour, R. Heckel, "Zero-Shot Noise2Noise: Efficient Image Denoising without any
//! Data", CVPR 2023, doi:10.1109/CVPR52729.2023.01347.
//! J. Lequyer, R. Philip, A. Sharma, W.-H. Hsu, L. Pelletier, "A fast blind zero-shot
//! denoiser" (Noise2Fast), Nature Machine Intelligence 4, 2022,
//! doi:10.1038/s42256-022-00547-8.
//! Y. Li et al., "Incorporating the image formation process into deep learning improves
//! network performance" (RLN), Nature Methods 19, 2022, doi:10.1038/s41592-022-01652-7.
//! D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
//! arXiv:1412.6980.

pub mod net;
pub mod weights;

/// Default of `refine`: the Wiener refinement's noise as a multiple of the measured noise.
pub const DEFAULT_REFINE: f64 = 1.75;

use crate::control::Control;
use crate::descriptor::{
    DefaultValue, Dims, FilePath, GLOBAL_SUPPORT, ImageInput, Memory, MethodDescriptor,
    MethodKind, ParamSpec, Rect, Region, Resolved, Scale, Unit,
};
use crate::error::{DenoiseError, Result};
use crate::rng::Rng;
use crate::volume::{Shape, Volume, VolumeView, check_input};
use net::Net;
use ndarray::Array3;

crate::choice_enum! {
    /// What the network learns from.
    pub enum Training {
        /// The image itself (zero-shot Noise2Noise on its sub-images).
        Zero = "self",
        /// The image and a clean counterpart given as `target` (supervised).
        Pairs = "pairs",
        /// Synthetic scenes blurred by the PSF with the image's noise (supervised).
        Synthetic = "synthetic",
    }
}

crate::choice_enum! {
    /// Which pairs of sub-images zero-shot training scores against each other.
    pub enum Subimages {
        /// Every other pixel of each row, and of each column, in a chequerboard (as
        /// Noise2Fast): four half-width or half-height images at the image's noise level.
        Chequerboard = "chequerboard",
        /// The means of the diagonal and anti-diagonal pixel pairs of each 2x2 block, with
        /// the consistency term (as Mansour & Heckel's ZS-N2N).
        Diagonal = "diagonal",
    }
}

crate::method_params! {
    /// Parameters of [`denoise_zs_n2n`].
    pub struct ZsN2nParams {
        /// Adam steps, each on one random patch. More = a closer fit; the learning rate is
        /// halved for the second half, and the network is the mean of that half's weights.
        /// 0 leaves the image unchanged.
        steps: usize = ParamSpec::int("Training steps", 0, 100_000, 800).unit(Unit::Count),
        /// Channels of the hidden layers. Wider learns more detail and costs its
        /// square in time.
        width: usize = ParamSpec::int("Width", 1, 64, 24).unit(Unit::Count),
        /// 3x3 convolutions in the network (two in the paper; four scored 0.95 dB better
        /// on real widefield noise). Each one widens what the network sees by 2 pixels
        /// (2·layers + 1 across) and adds 9·width² weights and as many multiply-adds per
        /// pixel.
        layers: usize = ParamSpec::int("Layers", MIN_LAYERS as i64, 8, 4).unit(Unit::Count),
        /// Adam's step size on the normalised image.
        learning_rate: f64 = ParamSpec::float("Learning rate", 1e-6, 0.1, DefaultValue::Fixed(0.002)).scale(Scale::Log),
        /// Side of the square patch each step trains on, in pixels: even (an odd side is
        /// taken one smaller, as the sub-images pair pixels), at most the image or its
        /// training region (under training=synthetic they come from the scenes: the image
        /// bounds them only down to the network's view), and at least what holds the
        /// network's view: 4 x layers + 2 under training=self, 2 x layers + 2 otherwise.
        /// Larger patches give smoother gradients and cost their area.
        patch: usize = ParamSpec::int("Patch size", 2, 256, 64).unit(Unit::Pixels),
        /// The rectangle of each plane to train on, `x,y,width,height` in pixels (large enough
        /// to hold the network's view: 4 x layers + 2 a side under training=self, 2 x layers
        /// + 2 otherwise), such as the cells of a field that is mostly background: patches are drawn
        /// from it only (with training=synthetic: the scenes' intensities, and their noise
        /// unless a Poisson–Gaussian model gives it, are measured in it), and the network is
        /// then applied to the whole image. Empty: the whole plane. In Fiji, the Selection
        /// button fills it in, and the preview trains on it too (its training covers the
        /// whole plane, as the final run's).
        train_region: Region = ParamSpec::region("Train on region"),
        /// self: learn from the image alone (zero-shot). pairs: learn to turn the image
        /// into `target`, a clean capture of the same field (an average of many frames, a
        /// long exposure): train once with save_weights, then apply the weights to other
        /// images taken the same way. synthetic: learn from generated scenes (dots, rings,
        /// filaments) blurred by a Gaussian PSF of psf_sigma, spanning the image's
        /// intensities and carrying its noise, whose clean version is known: no clean data
        /// needed, and the network learns what such structures look like, not the image's
        /// own. All three train on the GPU too (the scenes and the target's fit are
        /// prepared on the CPU).
        training: Training = ParamSpec::choice("Training", Training::NAMES, Training::Zero.name()),
        /// For training=self: the pairs of sub-images the network learns to turn into
        /// each other. chequerboard: every other pixel of each row (and of each column),
        /// as Noise2Fast, which keeps full resolution along one axis and the image's own
        /// noise level. diagonal: means of pixel pairs of each 2x2 block (the ZS-N2N
        /// paper's), whose noise is weaker than the image's: on real widefield pairs it
        /// scored 1.6 dB below chequerboard.
        subimages: Subimages = ParamSpec::choice("Sub-images", Subimages::NAMES, Subimages::Chequerboard.name()).when("training", Training::Zero.name()),
        /// For training=synthetic: the microscope's PSF as a Gaussian, its standard
        /// deviation in pixels (for a widefield microscope about 0.21 · wavelength / NA,
        /// divided by the pixel size). It sets how smooth the scenes are, so it acts as the
        /// strength: narrower than the images' blur, the network keeps noise as detail;
        /// wider, it smooths more. Auto (tune) searches it by the self-supervised loss.
        psf_sigma: f64 = crate::psf::GAUSSIAN_SIGMA.when("training", Training::Synthetic.name()).tunable(),
        /// Strength of the Wiener refinement after the network (BM3D's second stage, with
        /// the network's output in place of BM3D's first): similar patches are matched on
        /// the network's output and the noisy patches Wiener-filtered with its spectra as
        /// the signal, the noise taken as `refine` times the image's measured noise.
        /// Larger smooths more; 0 gives the network's output alone. It added 0.8 dB on
        /// real widefield pairs at the default (docs/benchmarks.md, "Learned denoiser:
        /// Wiener refinement").
        refine: f64 = ParamSpec::float("Wiener refinement", 0.0, 10.0, DefaultValue::Fixed(DEFAULT_REFINE)),
        /// Seed of the initial weights, of the patch positions and of the synthetic scenes. The same seed gives the
        /// same result on the CPU on any machine; a GPU's is within the method's GPU
        /// tolerance of it.
        seed: usize = ParamSpec::int("Seed", 0, 1_000_000_000, 0),
        /// A weights file written by `save_weights`: apply those weights instead of
        /// training (the training settings, from steps to psf_sigma, are then not used;
        /// `refine` is, as the file holds the network only), so
        /// that a batch trains once and denoises every image in about a second.
        /// Use the noise model it was trained with. Empty: train on this image.
        weights: FilePath = ParamSpec::file("Apply saved weights", false),
        /// Save the trained weights to this file (JSON, about 190 kB at width 24 with 4
        /// layers, 65 kB with 2), to
        /// apply them to other images with `weights`. Empty: do not save.
        save_weights: FilePath = ParamSpec::file("Save weights to", true),
    }
}

/// The registry entry.
pub static DESCRIPTOR: MethodDescriptor = MethodDescriptor {
    id: "zs_n2n",
    name: "Zero-shot Noise2Noise (learned)",
    category: "Learned",
    summary: "A small network trained on the image itself in seconds, with no clean data \
              (Mansour & Heckel 2023's network on Noise2Fast's chequerboard sub-images), \
              on a noisy/clean pair (training=pairs), or on synthetic scenes with the \
              image's noise (training=synthetic); its output is then refined by BM3D's \
              Wiener stage (refine). Assumes noise independent between pixels. On real \
              widefield noise, zero-shot and refined, it is level with BM3D (0.05 dB above \
              on average, above NL-means on every pair; docs/benchmarks.md) at tens of \
              times BM3D's time: BM3D is the quicker choice there.",
    references: &[
        "Y. Mansour, R. Heckel, Zero-Shot Noise2Noise: Efficient Image Denoising without \
         any Data, CVPR 2023, doi:10.1109/CVPR52729.2023.01347",
        "J. Lequyer, R. Philip, A. Sharma, W.-H. Hsu, L. Pelletier, A fast blind zero-shot \
         denoiser (Noise2Fast), Nature Machine Intelligence 4, 2022, \
         doi:10.1038/s42256-022-00547-8",
        "Y. Li et al., Incorporating the image formation process into deep learning \
         improves network performance, Nature Methods 19, 2022, \
         doi:10.1038/s41592-022-01652-7",
    ],
    kind: MethodKind::Denoise,
    dims: Dims::D2D3,
    params: ZsN2nParams::SPECS,
    images: &[ImageInput {
        key: TARGET_IMAGE,
        label: "Clean target",
        help: "For training=pairs: the same field as the image without its noise (an \
               average of many frames, or a long exposure), same shape. Its gain and offset \
               need not match the image's: it is fitted onto the image's intensities by \
               least squares first.",
        when: ("training", Training::Pairs.name()),
        example: example_target,
    }],
    // Training on either device follows one schedule, but Adam turns a rounding in a
    // near-zero gradient into a full step, and later steps carry it, so no device can be
    // held closer to the CPU than the CPU is to itself when the image moves by one
    // rounding. Multiplying the image by 1 + f32::EPSILON moved the CPU's own result, at
    // the defaults (four layers, chequerboard, 800 steps averaged over the second half),
    // by 1.1e-2 of the range on a 67x45 phantom and 7.8e-3 on a 5x33x29 one; the GPU's
    // differed from the CPU's by 6.2e-3 and 9.1e-3 there (lavapipe). (With two layers on
    // diagonal sub-images and 400 steps: 3.1e-3 and 3.5e-3.) The refinement passes such a
    // difference on to its block matching, where it can swap a group's member: since the
    // network runs on the image alone when refined, the nudged image moved the CPU's
    // refined result by 1.15e-2 of the range on the 67x45 phantom and 3.5e-2 on the
    // 5x33x29 one, and the GPU's differed from the CPU's by 2.1e-2 on the latter
    // (lavapipe). The bound is about twice the largest of these; the network's kernels are
    // held to 1e-5 of the CPU with the same weights (the GPU crate's tests).
    gpu_tolerance: Some(7e-2),
    identity: &[("steps", "0")],
    quick: &[("steps", "12")],
    support,
    memory: Memory {
        volume: 2.0,
        plane: 3.0,
    },
    memory_for: Some(memory_for),
    tune_loss: crate::descriptor::TuneLoss::Masked,
    run,
};

/// The key of the clean target image of `training = pairs`.
pub const TARGET_IMAGE: &str = "target";

/// A stand-in clean target for tests and demos: the input smoothed by a Gaussian of 1
/// pixel, plane by plane.
fn example_target(input: VolumeView<'_>) -> Volume {
    let p = crate::methods::gaussian::GaussianParams {
        sigma: 1.0,
        sigma_z: 0.0,
        border: crate::border::BorderMode::Symmetric,
    };
    crate::methods::gaussian::denoise_gaussian(input, &p, &Control::new())
        .unwrap_or_else(|_| input.to_owned())
}

/// Every output pixel depends on the whole stack: the weights are trained on patches
/// from all of it, and the normalisation uses its mean and spread.
fn support(_: &Resolved) -> Result<[usize; 3]> {
    Ok([GLOBAL_SUPPORT; 3])
}

/// The normalised copy and the output; while applying, three plane copies (the mirrored
/// input, its result, the result mirrored back) and the feature maps of one band of rows;
/// the training's patch maps (independent of the image's size), or, with saved weights,
/// the file read and the network it holds, at its own width and depth.
fn memory_for(r: &Resolved, s: Shape) -> Memory {
    let Ok(p) = ZsN2nParams::from_resolved(r) else {
        return DESCRIPTOR.memory;
    };
    let (h, w) = (s.height as f32, s.width as f32);
    // Saved weights are applied, not trained, with the width and depth they were saved
    // at (read from the file, its tensors skipped). A file that cannot be read is sized as
    // no training, so that the run reaches the load and names what is wrong with it.
    let saved = p.weights.get().map(weights::network_of);
    let (width, depth) = saved.flatten().unwrap_or((p.width, p.layers));
    let (c, layers) = (width as f32, depth as f32);
    // A pass keeps the input and every convolution's map, `layers` rows and columns
    // beyond its own on each side at most.
    let margin = 2.0 * layers;
    let band = band_rows(s.height) as f32;
    let apply = (band + margin) * (w + margin) * (layers * c + 2.0);
    let side = p.patch.min(s.height).min(s.width) as f32 + margin;
    // Three passes (the patch and its diagonal halves, 1.5 patches in all) keep their
    // maps (the chequerboard's four half patches are passed one at a time: less), and
    // the backward pass adds two gradient maps of the same size; plus the weights, their
    // gradients, Adam's two moments, the weights' running average and the transposed w2.
    let train = 1.5 * side * side * ((layers + 2.0) * c + 4.0)
        + 6.0 * (layers - 1.0) * 9.0 * c * c;
    // Planes are applied one after another, so their working set counts once, not per
    // plane (the support is global, so plane copies would count for the whole stack).
    // The supervised target's fitted, normalised copy; or the scenes, noisy and clean, as
    // generated and normalised, and the image's grey levels they are measured on.
    let scenes = (SCENE.depth * SCENE.height * SCENE.width) as f32;
    let (copies, fixed) = if p.trains_towards_target() {
        (1.0, 0.0)
    } else if p.trains_on_scene() {
        // The scenes as drawn, measured and given noise (six at the peak), then the two
        // normalised copies training reads.
        (1.0, 8.0 * scenes)
    } else {
        (0.0, 0.0)
    };
    // The file's text (about three floats' worth of bytes per weight), the tensors parsed
    // from it, and the network they make.
    let train = match saved {
        Some(_) => 6.0 * Net::count(width, depth) as f32,
        None => train,
    };
    let network = (train + fixed + 3.0 * h * w + apply) / (s.depth as f32 * h * w);
    // The refinement runs once the network's working set and the normalised copy are
    // freed: the network's output and the refined one (the two volumes above), and
    // BM3D's working set for a plane.
    let refine = if p.refines() {
        crate::methods::bm3d::DESCRIPTOR.memory.plane / s.depth as f32
    } else {
        0.0
    };
    Memory {
        volume: 2.0 + copies + network.max(refine),
        plane: 0.0,
    }
}

/// Rows per band when applying the network: bounded maps for tall images.
fn band_rows(h: usize) -> usize {
    h.div_ceil(16).max(16).min(h)
}

fn run(v: VolumeView<'_>, r: &Resolved, ctl: &Control) -> Result<Volume> {
    let p = ZsN2nParams::from_resolved(r)?;
    with_teacher(v, r, &p, |teacher| denoise(v, teacher, &p, ctl))?
}

/// Hands `then` what the resolved settings `r` (read as `p`) give training besides the
/// input `v` (as the method sees it): the target seen through the noise model ([`target_seen`]), the
/// synthetic scenes ([`synthetic_pair`], with the noise model `r` fitted), or nothing.
/// Every device trains from the same teacher.
///
/// # Errors
/// A noise model `r` cannot give; a target that does not fit the image; what
/// [`synthetic_pair`] refuses.
pub fn with_teacher<T>(
    v: VolumeView<'_>,
    r: &Resolved,
    p: &ZsN2nParams,
    then: impl FnOnce(Teacher<'_>) -> T,
) -> Result<T> {
    let target = target_seen(r, v)?;
    let teacher = match &target {
        Some(t) => Teacher::Target(t.view()),
        None if p.trains_on_scene() => {
            let gat = crate::noise::vst::Gat::from_resolved(r)?;
            Teacher::Scene(synthetic_pair(v, p, gat.as_ref())?)
        }
        None => Teacher::None,
    };
    Ok(then(teacher))
}

/// What training learns from besides the image, as the method sees its input (after the
/// noise model's transform).
#[derive(Debug, Clone)]
pub enum Teacher<'a> {
    /// Nothing: the image alone (`training = self`, or saved weights applied).
    None,
    /// A clean image of the same field (`training = pairs`; [`target_seen`]).
    Target(VolumeView<'a>),
    /// Generated noisy scenes and their clean versions (`training = synthetic`;
    /// [`synthetic_pair`]).
    Scene(Pair),
}

impl Teacher<'_> {
    fn target(&self) -> Option<VolumeView<'_>> {
        match self {
            Teacher::Target(t) => Some(t.view()),
            _ => None,
        }
    }
}

/// Noisy scenes and their clean versions, on the scale of the image the method sees.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The scenes with the image's noise.
    pub noisy: Volume,
    /// The scenes without noise (under a Poisson–Gaussian model, what the noisy scenes'
    /// transform is on average: [`Gat::forward_mean`](crate::noise::vst::Gat::forward_mean)).
    pub clean: Volume,
}

/// The shape of the generated scenes of `training = synthetic`, whatever the image's:
/// as many pixels as a 512x512 image, so that a small preview region trains on scenes as
/// varied as the whole image does, in planes of their own (2D scenes: the network is 2D).
pub const SCENE: Shape = Shape::new(4, 256, 256);

/// The training pairs of `training = synthetic` for `input` as the method sees it: the
/// scenes of [`crate::methods::scene`] (dots, rings and filaments blurred by a
/// Gaussian PSF of `psf_sigma`), their intensities mapped onto the image's (the
/// [`RANGE_QUANTILES`] of both, lightly smoothed, matched, the image's through its noise
/// and the scenes' through the same noise), then given the image's noise:
/// under the Poisson–Gaussian model `gat` (the one the image was stabilised with), drawn on
/// the grey levels and stabilised as the image was; otherwise white Gaussian noise of the
/// standard deviation estimated on the image. Measured in `train_region` when given.
/// Seeded by `seed`.
///
/// # Errors
/// A `train_region` that [`training_area`] refuses; an input [`check_input`] refuses.
pub fn synthetic_pair(
    input: VolumeView<'_>,
    p: &ZsN2nParams,
    gat: Option<&crate::noise::vst::Gat>,
) -> Result<Pair> {
    check_input(&input)?;
    let area = training_area(Shape::of(&input), p)?;
    let region = input.slice(ndarray::s![
        ..,
        area.y..area.y + area.height,
        area.x..area.x + area.width
    ]);
    let grey = match gat {
        Some(g) => g.undo(&region),
        None => region.to_owned(),
    };
    let (lo, hi) = intensity_range(grey.view());
    let sigma = match gat {
        Some(_) => 0.0,
        None => crate::noise::estimate_sigma(&region)?,
    };
    let mut rng = Rng::new(p.seed as u64 ^ 0x5ce7_e5ce);
    // The scenes with their own quantiles at 0 and 1.
    let mut unit = Array3::<f32>::zeros((SCENE.depth, SCENE.height, SCENE.width));
    for mut plane in unit.outer_iter_mut() {
        let scene = crate::methods::scene::draw(
            (1, SCENE.height, SCENE.width),
            p.psf_sigma,
            &mut Rng::new(rng.next_u64()),
        );
        let (slo, shi) = intensity_range(scene.view());
        let gain = if shi > slo { 1.0 / (shi - slo) } else { 0.0 };
        plane.assign(
            &scene
                .index_axis(ndarray::Axis(0), 0)
                .mapv(|v| ((f64::from(v) - slo) * gain) as f32),
        );
    }
    let draw = |(lo, hi): (f64, f64), rng: &mut Rng| {
        let clean = unit.mapv(|u| (lo + f64::from(u) * (hi - lo)) as f32);
        let noisy = match gat {
            Some(g) => g.sample(&clean.view(), rng),
            None => clean.mapv(|v| (f64::from(v) + sigma * rng.normal()) as f32),
        };
        (clean, noisy)
    };
    // The image's range was measured through its noise, which smoothing leaves a little
    // of: it widens the range. Measured the same way on noisy scenes, the widening shows,
    // and the clean scenes are narrowed by it.
    let (_, first) = draw((lo, hi), &mut rng);
    let (nlo, nhi) = intensity_range(first.view());
    let (lo2, hi2) = (2.0 * lo - nlo, 2.0 * hi - nhi);
    // Noise wider than the image's whole range: the image is (nearly) flat, and so are
    // the scenes.
    let range = if lo2 < hi2 {
        (lo2, hi2)
    } else {
        let mid = 0.5 * (lo + hi);
        (mid, mid)
    };
    let (clean, noisy) = draw(range, &mut rng);
    Ok(match gat {
        Some(g) => Pair {
            noisy: g.forward(&noisy.view()),
            clean: g.forward_mean(&clean.view()),
        },
        None => Pair { noisy, clean },
    })
}

/// The quantiles at which a scene's intensities are matched to the image's: the
/// background's and the bright structures' levels, robust to a few hot pixels.
pub const RANGE_QUANTILES: (f64, f64) = (0.005, 0.995);

/// The [`RANGE_QUANTILES`] of `v` smoothed plane by plane by a Gaussian of 2 pixels (which
/// takes most of the noise off a noisy image, and little off a blurred scene).
fn intensity_range(v: VolumeView<'_>) -> (f64, f64) {
    let p = crate::methods::gaussian::GaussianParams {
        sigma: 2.0,
        sigma_z: 0.0,
        border: crate::border::BorderMode::Symmetric,
    };
    let smooth = crate::methods::gaussian::denoise_gaussian(v, &p, &Control::new())
        .unwrap_or_else(|_| v.to_owned());
    let (lo, hi) = RANGE_QUANTILES;
    crate::noise::intensity_percentiles(&smooth.view(), lo, hi)
}

/// The job's target image as the method sees `input` (the image as the pipeline hands it
/// over). Under a Poisson–Gaussian model the pipeline stabilises the input only, and the
/// network's output is turned back by the unbiased inverse, which expects what the
/// stabilised noisy image is on average: so the target is fitted onto the image's grey
/// levels (where the model's gain and offset hold) and mapped to that average
/// ([`Gat::forward_mean`](crate::noise::vst::Gat::forward_mean)), not through the transform
/// itself, which would brighten low counts. Otherwise the target is used as given.
/// Either way [`train_or_load_with`] fits what it gets onto the image it sees (after this
/// fit, close to the identity).
///
/// # Errors
/// A target that does not fit the image ([`train_or_load_with`]'s errors).
pub fn target_seen<'r>(
    r: &'r Resolved,
    input: VolumeView<'_>,
) -> Result<Option<std::borrow::Cow<'r, Volume>>> {
    // Only training towards it uses the target: otherwise it is not looked at.
    let towards = ZsN2nParams::from_resolved(r).is_ok_and(|p| p.trains_towards_target());
    let Some(given) = r.image(TARGET_IMAGE).filter(|_| towards) else {
        return Ok(None);
    };
    let t = target_of(Shape::of(&input), Some(given.view()))?;
    let Ok(Some(g)) = crate::noise::vst::Gat::from_resolved(r) else {
        return Ok(Some(std::borrow::Cow::Borrowed(given)));
    };
    let raw = g.undo(&input);
    let (raw, tt) = (raw.as_standard_layout(), t.as_standard_layout());
    // Invariant: `as_standard_layout` yields contiguous arrays.
    let (a, b) = gain_offset(raw.as_slice().unwrap_or(&[]), tt.as_slice().unwrap_or(&[]))?;
    let fitted = t.mapv(|v| (a * f64::from(v) + b) as f32);
    Ok(Some(std::borrow::Cow::Owned(g.forward_mean(&fitted.view()))))
}

impl ZsN2nParams {
    /// Whether the job trains towards a target: `training = pairs` and no saved weights
    /// applied instead.
    pub fn trains_towards_target(&self) -> bool {
        self.training == Training::Pairs && self.weights.get().is_none()
    }

    /// Whether the job trains on synthetic scenes: `training = synthetic`, no saved
    /// weights applied instead, and steps to train.
    pub fn trains_on_scene(&self) -> bool {
        self.training == Training::Synthetic && self.weights.get().is_none() && self.steps > 0
    }

    /// Whether the job trains with a supervised loss (towards a target or on scenes).
    pub fn trains_supervised(&self) -> bool {
        self.trains_towards_target() || self.trains_on_scene()
    }

    /// Whether the network's output is refined by BM3D's Wiener stage ([`refine`]).
    pub fn refines(&self) -> bool {
        self.refine > 0.0
    }
}

/// Trains the network on the image and applies it; see the module docs.
///
/// # Errors
/// [`crate::DenoiseError::ParamOutOfRange`], [`crate::DenoiseError::InvalidInput`],
/// [`crate::DenoiseError::Cancelled`].
///
/// # Examples
/// ```
/// use denoisekit_core::{denoise_zs_n2n, Control, Subimages, Training, ZsN2nParams};
/// use denoisekit_core::phantom::Rng;
/// use ndarray::Array3;
/// let mut rng = Rng::new(1);
/// let clean = Array3::from_shape_fn((1, 32, 32), |(_, y, _)| if y % 8 < 4 { 1.0f32 } else { 0.0 });
/// let noisy = clean.mapv(|v| v + 0.3 * rng.normal() as f32);
/// let p = ZsN2nParams {
///     steps: 100, width: 8, layers: 2, learning_rate: 0.002, patch: 32, seed: 0,
///     training: Training::Zero, subimages: Subimages::Chequerboard, psf_sigma: 1.5,
///     refine: denoisekit_core::methods::zs_n2n::DEFAULT_REFINE,
///     train_region: Default::default(), weights: Default::default(),
///     save_weights: Default::default(),
/// };
/// let out = denoise_zs_n2n(noisy.view(), &p, &Control::new()).unwrap();
/// let err = |a: &Array3<f32>| (a - &clean).mapv(|d| d * d).mean().unwrap();
/// assert!(err(&out) < err(&noisy));
/// ```
pub fn denoise_zs_n2n(input: VolumeView<'_>, p: &ZsN2nParams, ctl: &Control) -> Result<Volume> {
    denoise(input, Teacher::None, p, ctl)
}

/// [`denoise_zs_n2n`] with what training learns from besides the image: the clean target
/// of `training = pairs`, or the scenes of `training = synthetic` (generated here, under
/// white Gaussian noise, when not given).
///
/// # Errors
/// As [`denoise_zs_n2n`], and [`DenoiseError::InvalidParamValue`] for a missing target or
/// one that does not fit the image ([`train_or_load_with`]).
pub fn denoise(input: VolumeView<'_>, teacher: Teacher<'_>, p: &ZsN2nParams, ctl: &Control) -> Result<Volume> {
    match train_or_load(input, teacher, p, ctl)? {
        Some(t) => {
            let out = apply_all(
                &t.net,
                &t.norm,
                Shape::of(&input),
                (t.mean, t.std),
                mirror_images(p),
                Some((ctl, t.total)),
            )?;
            let total = t.total;
            // The normalised copy is not needed by the refinement.
            drop(t);
            refine(input, out, p, ctl, total)
        }
        None => Ok(input.to_owned()),
    }
}

/// The network's output `net_out` for `input`, refined by BM3D's Wiener stage with it as
/// the pilot (`refine` times the measured noise; see the parameter), or as it is at
/// `refine = 0`. Both devices refine on the CPU. Each refined plane advances the job's
/// progress by one of `total` units ([`Trained::total`] counts them).
///
/// # Errors
/// [`DenoiseError::Cancelled`]; what [`crate::noise::estimate_sigma`] refuses.
pub fn refine(input: VolumeView<'_>, net_out: Volume, p: &ZsN2nParams, ctl: &Control, total: u64) -> Result<Volume> {
    // A network taken out of float range (a weights file of huge values) is passed on as
    // it is, for the job to refuse naming the settings; the pilot's check would blame the
    // image instead.
    let usable = |v: &f32| v.abs() <= crate::volume::MAX_ABS_PIXEL;
    if !p.refines() || !net_out.iter().all(usable) {
        return Ok(net_out);
    }
    ctl.set_note("Wiener refinement on the network's output");
    let sigma = crate::noise::estimate_sigma(&input)? * p.refine;
    crate::methods::bm3d::wiener_with_pilot(input, net_out.view(), sigma, ctl, &|| ctl.advance(1, total))
}

/// A network ready to apply ([`train_or_load`]): what the CPU's [`denoise_zs_n2n`] and the
/// GPU host both apply, so that both devices run the same weights on the same values.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The trained (or loaded) network.
    pub net: Net,
    /// The image normalised to zero mean and unit spread, (z, y, x) order.
    pub norm: Vec<f32>,
    /// The image's mean: an output value is `v · std + mean`.
    pub mean: f64,
    /// The image's standard deviation.
    pub std: f64,
    /// The job's progress total: one unit per training step, per applied plane and, when
    /// refined, per refined plane ([`refine`]).
    pub total: u64,
}

/// Checks the parameters and the image, then trains the network on the normalised image
/// on the CPU (saving it when asked) or loads saved weights; `None` when the image stays
/// as it is (`steps = 0` without weights, or a constant image). The job's note says what
/// is applied next.
///
/// # Errors
/// As [`denoise_zs_n2n`].
pub fn train_or_load(
    input: VolumeView<'_>,
    teacher: Teacher<'_>,
    p: &ZsN2nParams,
    ctl: &Control,
) -> Result<Option<Trained>> {
    train_or_load_with(
        input,
        teacher,
        p,
        ctl,
        |data, s, p, step_done| train(data, s, p, |loss, net| step_done(loss, &mut || Ok(net.clone()))),
        |net, norm, s, mean_std| apply_all(net, norm, s, mean_std, &FLIPS, None),
    )
}

/// The rectangle of each plane that training draws its patches from, checked against the
/// image: `train_region`, or the whole plane.
///
/// # Errors
/// [`DenoiseError::InvalidParamValue`] naming `train_region` when it does not lie inside
/// the plane.
pub fn training_area(s: Shape, p: &ZsN2nParams) -> Result<Rect> {
    let Some(r) = p.train_region.0 else {
        return Ok(Rect::plane(s));
    };
    if !r.fits(s) {
        return Err(DenoiseError::InvalidParamValue {
            name: "train_region".into(),
            value: r.to_string(),
            expected: format!(
                "a rectangle x,y,width,height inside the {}x{} plane (x + width <= {}, y + height \
                 <= {}), or empty for the whole plane",
                s.width, s.height, s.width, s.height
            ),
        });
    }
    Ok(r)
}

/// The least side of a training patch that holds the network's view (`2·layers + 1`
/// across): twice that under `training = self`, whose half-resolution sub-images must
/// each hold it, else one more (patches have an even side, [`side_within`]).
fn least_side(training: Training, layers: usize) -> usize {
    match training {
        Training::Zero => 2 * (2 * layers + 1),
        _ => 2 * layers + 2,
    }
}

/// Checks that the patches training draws on a stack of shape `s` hold the network's
/// view: a patch that cannot trains the network on padding alone, and the image it is
/// applied to gets a network that never saw its inside. A small `patch`, a small region
/// and a small image all shrink the patches; scenes of `training = synthetic` are large,
/// whatever the image.
///
/// # Errors
/// [`training_area`]'s; [`DenoiseError::InvalidParamValue`] naming `patch` or
/// `train_region`, whichever keeps the patches too small;
/// [`DenoiseError::InvalidInput`] when the whole plane is too small.
pub fn check_view(s: Shape, p: &ZsN2nParams) -> Result<()> {
    checked_patches(s, p).map(|_| ())
}

/// [`check_view`], giving the training area and the patch side it checked.
fn checked_patches(s: Shape, p: &ZsN2nParams) -> Result<(Rect, usize)> {
    let area = training_area(s, p)?;
    let (least, view) = (least_side(p.training, p.layers), 2 * p.layers + 1);
    // Scenes take their intensities and noise from a region: one smaller than a patch
    // would be measures little.
    if let (Training::Synthetic, Some(r)) = (p.training, p.train_region.0)
        && r.width.min(r.height) < least
    {
        return Err(DenoiseError::InvalidParamValue {
            name: "train_region".into(),
            value: r.to_string(),
            expected: format!(
                "at least {least}x{least} pixels with {} layers: the synthetic scenes' \
                 intensities and noise are measured in it",
                p.layers
            ),
        });
    }
    let side = side_in(area, p);
    if side >= least {
        return Ok((area, side));
    }
    let why = match p.training {
        Training::Zero => "training draws half-resolution sub-images from each patch, each of which must hold",
        _ => "each training patch must hold",
    };
    let need = format!(
        "at least {least}x{least} pixels with {} layers: {why} the network's {view}x{view} view",
        p.layers
    );
    // The deepest network these patches could train, if any.
    let fewer = (MIN_LAYERS..p.layers)
        .rev()
        .find(|&l| side >= least_side(p.training, l))
        .map(|l| match l {
            MIN_LAYERS => format!("layers = {l}"),
            _ => format!("layers = {l} or fewer"),
        });
    // `least` is even, so the patch alone keeps the side below it exactly when `patch`
    // is (under synthetic training, only then). It is named first, whatever else is too
    // small: a whole image too small is refused only when trained on, and would hide it.
    if p.patch < least {
        let deeper = fewer.as_ref().map_or(String::new(), |l| format!(", or {l}"));
        return Err(DenoiseError::InvalidParamValue {
            name: "patch".into(),
            value: p.patch.to_string(),
            expected: format!("{need}: patch = {least} or more{deeper}"),
        });
    }
    let or = |l: &String| format!("{l}, or ");
    let Some(r) = p.train_region.0 else {
        let instead = fewer.as_ref().map_or(String::new(), |l| format!("use {l}, or "));
        return Err(DenoiseError::invalid(format!(
            "the image is {}x{} pixels; training zs_n2n on it needs {need}: {instead}train on \
             a larger image with save_weights and apply the weights here with weights=",
            s.width, s.height
        )));
    };
    let larger = if s.width.min(s.height) >= least {
        "a larger region"
    } else {
        "training on a larger image, as this one is smaller than that"
    };
    Err(DenoiseError::InvalidParamValue {
        name: "train_region".into(),
        value: r.to_string(),
        expected: format!("{need} ({}{larger})", fewer.as_ref().map_or(String::new(), or)),
    })
}

/// Side of the square patches training draws: even, at most `patch` and the training
/// area (the whole plane where `train_region` is not usable, which [`training_area`]
/// refuses). Under `training = synthetic` the patches come from the generated scenes:
/// the image bounds them only to keep a step's cost what the image makes it, never
/// below what the network's view needs.
pub fn patch_side(s: Shape, p: &ZsN2nParams) -> usize {
    side_in(training_area(s, p).unwrap_or(Rect::plane(s)), p)
}

/// [`patch_side`] in the training area `area`.
fn side_in(area: Rect, p: &ZsN2nParams) -> usize {
    let side = side_within(p.patch, area.height, area.width);
    match p.training {
        Training::Synthetic => {
            let least = least_side(p.training, p.layers);
            side.max(side_within(p.patch, least, least))
        }
        _ => side,
    }
}

/// The fewest 3x3 convolutions a network has: `layers`' least value.
const MIN_LAYERS: usize = 2;

/// The even patch side at most `patch`, `h` and `w`, and at least 2.
fn side_within(patch: usize, h: usize, w: usize) -> usize {
    (patch.min(h).min(w) / 2 * 2).max(2)
}

/// What a trainer calls after each step, in order: the step's loss and a way to fetch the
/// network as it stands (called only when a watcher wants an intermediate result, so a
/// GPU reads its weights back only then; a GPU reports its steps after each batch, so it
/// gives the network at the batch's end). It advances the job and may cancel it.
pub type StepDone<'a, E> = dyn FnMut(f64, &mut dyn FnMut() -> std::result::Result<Net, E>) -> std::result::Result<(), E> + 'a;

/// What training learns from: the normalised stack, and for `training = pairs` the
/// target fitted onto the stack's intensities and normalised the same way; for `training
/// = synthetic` the noisy scenes and their clean versions, normalised as the stack is.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    /// The image normalised to zero mean and unit spread (or the noisy scenes, normalised
    /// as the image is), (z, y, x) order.
    pub norm: &'a [f32],
    /// The supervised target on the same scale, same order.
    pub target: Option<&'a [f32]>,
}

impl<'a> Data<'a> {
    /// The normalised stack alone: zero-shot training.
    pub fn of(norm: &'a [f32]) -> Self {
        Self { norm, target: None }
    }
}

/// [`train_or_load`] with the training and the intermediate results' application done by
/// the caller's device: `train(data, shape, params, step_done)` trains as [`train`] does
/// (the GPU's trainer follows the same [`Schedule`]), with `shape` the shape of the data
/// (the scenes' under `training = synthetic`); `interim(net, norm, shape, (mean, std))`
/// applies a network to the normalised stack on the image's scale. `teacher` is what
/// `training` learns from besides the image, as the method sees its input.
///
/// # Errors
/// As [`denoise`], and the device's own.
pub fn train_or_load_with<E: From<DenoiseError>>(
    input: VolumeView<'_>,
    teacher: Teacher<'_>,
    p: &ZsN2nParams,
    ctl: &Control,
    train: impl FnOnce(Data<'_>, Shape, &ZsN2nParams, &mut StepDone<'_, E>) -> std::result::Result<Net, E>,
    mut interim: impl FnMut(&Net, &[f32], Shape, (f64, f64)) -> std::result::Result<Volume, E>,
) -> std::result::Result<Option<Trained>, E> {
    p.validate()?;
    check_input(&input)?;
    if let Some(path) = p.save_weights.get() {
        let refuse = |why: &str| DenoiseError::InvalidParamValue {
            name: "save_weights".into(),
            value: path.display().to_string(),
            expected: format!("empty when {why}: nothing is trained, so nothing would be saved"),
        };
        if p.weights.get().is_some() {
            return Err(refuse("weights are applied").into());
        }
        if p.steps == 0 {
            return Err(refuse("steps = 0").into());
        }
        // Retraining replaces earlier weights; anything else there (the image being
        // denoised, named by mistake) is the user's data.
        if path.exists() && !weights::is_weights_file(path) {
            return Err(DenoiseError::InvalidParamValue {
                name: "save_weights".into(),
                value: path.display().to_string(),
                expected: "a new file, or a zs_n2n weights file to replace: this file is \
                           something else, and is left as it is"
                    .into(),
            }
            .into());
        }
    }
    // Read before the image is looked at: a missing or damaged file is reported
    // whatever the image holds.
    let loaded = match p.weights.get() {
        Some(path) => Some(weights::load(path, "weights")?.0),
        None => None,
    };
    let s = Shape::of(&input);
    // Before the image's values are looked at: a region outside it, or a region or patch
    // too small for the network, is refused whatever the image holds, and with steps = 0
    // too, so that a macro's mistake shows on its first run. A whole image too small is
    // refused only when it is trained on (a constant one is returned as it is).
    let too_small = match loaded {
        Some(_) => None,
        None => match check_view(s, p) {
            Err(e @ DenoiseError::InvalidInput { .. }) => Some(e),
            Ok(()) => None,
            Err(e) => return Err(e.into()),
        },
    };
    // Checked before the image's values too; a target is only used for training.
    let target = match p.trains_towards_target() {
        true => Some(target_of(s, teacher.target())?),
        false => None,
    };
    if p.steps == 0 && loaded.is_none() {
        return Ok(None);
    }
    let src = input.as_standard_layout();
    // Invariant: `as_standard_layout` yields a contiguous array.
    let flat = src.as_slice().unwrap_or(&[]);
    let (mean, std) = mean_std(flat);
    if std == 0.0 || !std.is_finite() {
        // A user who asked for weights must not find the file missing later.
        if p.save_weights.get().is_some() {
            return Err(DenoiseError::invalid(
                "the image is constant: there is nothing to train on, so no weights can be \
                 saved; train on an image with noise, or leave save_weights empty",
            )
            .into());
        }
        return Ok(None);
    }
    if let Some(e) = too_small {
        return Err(e.into());
    }
    // After the refusals above, which would otherwise leave the folders it makes behind.
    if let Some(path) = p.save_weights.get() {
        weights::check_writable(path, "save_weights")?;
    }
    let norm: Vec<f32> = flat
        .iter()
        .map(|&v| ((f64::from(v) - mean) / std) as f32)
        .collect();
    let target = match target {
        Some(t) => Some(fitted_target(flat, t, (mean, std))?),
        None => None,
    };
    let normalised = |v: &Volume| -> Vec<f32> {
        v.iter()
            .map(|&x| ((f64::from(x) - mean) / std) as f32)
            .collect()
    };
    // The scenes are the whole training data: a region chose what they were given, and
    // the trainer draws from all of them.
    let scenes = match (p.trains_on_scene(), teacher) {
        (true, Teacher::Scene(pair)) => Some(checked(pair)?),
        (true, _) => Some(synthetic_pair(input, p, None)?),
        (false, _) => None,
    }
    .map(|pair| {
        let on = Shape::of(&pair.noisy.view());
        // Patches no larger than zero-shot training's on this image: the cost of a step
        // stays what the image and the settings make it.
        let whole = ZsN2nParams {
            train_region: Region::default(),
            patch: patch_side(s, p),
            ..p.clone()
        };
        (normalised(&pair.noisy), normalised(&pair.clean), on, whole)
    });
    let refined = if p.refines() { s.depth } else { 0 };
    let total = (if loaded.is_some() { 0 } else { p.steps } + s.depth + refined) as u64;
    let net = match loaded {
        Some(net) => net,
        None => {
            let mut report = LossReport::new(p.steps);
            let mut shown = std::time::Instant::now();
            let mut steps_done = 0;
            let mut step_done = |loss: f64, net_so_far: &mut dyn FnMut() -> std::result::Result<Net, E>| {
                steps_done += 1;
                // A diverged training goes on to no purpose, and its weights would
                // replace a good saved file with an unusable one.
                if !loss.is_finite() {
                    return Err(diverged(p, steps_done).into());
                }
                if let Some(note) = report.add(loss) {
                    ctl.set_note(note);
                }
                // A watching preview sees the network improve while it trains.
                if ctl.wants_interim() && shown.elapsed() >= INTERIM_EVERY {
                    let net = net_so_far()?;
                    ctl.publish_interim(interim(&net, &norm, s, (mean, std))?);
                    shown = std::time::Instant::now();
                }
                ctl.advance(1, total)?;
                Ok(())
            };
            let net = match &scenes {
                Some((noisy, clean, on, whole)) => {
                    let data = Data {
                        norm: noisy,
                        target: Some(clean),
                    };
                    train(data, *on, whole, &mut step_done)?
                }
                None => {
                    let data = Data {
                        norm: &norm,
                        target: target.as_deref(),
                    };
                    train(data, s, p, &mut step_done)?
                }
            };
            if let Some(path) = p.save_weights.get() {
                weights::save(&net, weights::TrainedOn::new(s, p), path, "save_weights")?;
            }
            net
        }
    };
    ctl.set_note(match p.weights.get() {
        Some(path) => {
            // The job's parameter line (the CLI's, a macro's record) still shows the
            // descriptor's width and depth: say which network actually runs.
            let note = format!(
                "applying the weights of {} (width {}, {} layers, as saved)",
                path.display(),
                net.c,
                net.layers
            );
            log::info!("zs_n2n: {note}; the training parameters are not used");
            note
        }
        None => "applying the trained network".to_string(),
    });
    Ok(Some(Trained {
        net,
        norm,
        mean,
        std,
        total,
    }))
}

/// A caller's synthetic pair, checked: finite, at least 2x2, both of one shape.
fn checked(pair: Pair) -> Result<Pair> {
    check_input(&pair.noisy.view())?;
    check_input(&pair.clean.view())?;
    if pair.noisy.dim() != pair.clean.dim() {
        return Err(DenoiseError::invalid(format!(
            "the synthetic scenes' noisy and clean versions differ in shape ({:?} and {:?}, \
             planes x height x width): they must be one shape",
            pair.noisy.dim(),
            pair.clean.dim()
        )));
    }
    Ok(pair)
}

/// The target of `training = pairs`, checked against the image's shape `s`.
fn target_of(s: Shape, target: Option<VolumeView<'_>>) -> Result<VolumeView<'_>> {
    let refuse = |value: String, expected: String| DenoiseError::InvalidParamValue {
        name: TARGET_IMAGE.into(),
        value,
        expected,
    };
    let Some(t) = target else {
        return Err(refuse(
            "none".into(),
            format!(
                "a clean image of the same field for training=pairs, given as {TARGET_IMAGE} \
                 (a TIFF file on the command line, an open image in ImageJ), or training=self"
            ),
        ));
    };
    let (d, h, w) = t.dim();
    if (d, h, w) != (s.depth, s.height, s.width) {
        return Err(refuse(
            format!("an image of {w}x{h}x{d}"),
            format!(
                "the image's own shape, {}x{}x{} (width x height x planes)",
                s.width, s.height, s.depth
            ),
        ));
    }
    check_input(&t).map_err(|e| refuse("an invalid image".into(), e.to_string()))?;
    Ok(t)
}

/// The target fitted onto the image `flat` by least squares (`a · target + b`, the image
/// the regressand: its noise then biases nothing) and normalised with the image's
/// `(mean, std)`, so that a target with another gain and offset (a frame average stretched
/// to 8 bits on its own) teaches the same network.
fn fitted_target(flat: &[f32], target: VolumeView<'_>, (mean, std): (f64, f64)) -> Result<Vec<f32>> {
    let t = target.as_standard_layout();
    // Invariant: `as_standard_layout` yields a contiguous array.
    let t = t.as_slice().unwrap_or(&[]);
    let (a, b) = gain_offset(flat, t)?;
    // (a · t + b − mean) / std, the fitted target normalised as the image is.
    Ok(t.iter()
        .map(|&y| ((a * f64::from(y) + b - mean) / std) as f32)
        .collect())
}

/// The least correlation a target must have with its image. The correlation of a noisy
/// image with its own clean scene is `1 / √(1 + σ²/s²)` (σ the noise's, s the scene's
/// spread): 0.2 only where the noise is five times the scene's contrast, while another
/// field, or one shifted by more than its structures' size, correlates near 0.
pub const MIN_TARGET_CORRELATION: f64 = 0.2;

/// The least-squares `(a, b)` of `x ≈ a · t + b`, with `x` the regressand (its noise then
/// biases nothing), summed in f64 in one fixed order. A constant `x` gives `(0, its
/// value)`: nothing to learn, which the caller finds on its own.
///
/// # Errors
/// [`DenoiseError::InvalidParamValue`] naming the target when it is constant or
/// correlates with `x` less than [`MIN_TARGET_CORRELATION`].
fn gain_offset(x: &[f32], t: &[f32]) -> Result<(f64, f64)> {
    let (xm, xs) = mean_std(x);
    let (tm, ts) = mean_std(t);
    if xs == 0.0 {
        return Ok((0.0, xm));
    }
    let cov = (x.iter().zip(t))
        .map(|(&x, &y)| (f64::from(x) - xm) * (f64::from(y) - tm))
        .sum::<f64>()
        / x.len().max(1) as f64;
    let r = cov / (xs * ts);
    // A NaN correlation (no spread to compare) is refused too.
    if ts == 0.0 || r.is_nan() || r < MIN_TARGET_CORRELATION {
        return Err(DenoiseError::InvalidParamValue {
            name: TARGET_IMAGE.into(),
            value: if ts == 0.0 {
                "a constant image".into()
            } else {
                format!("an image whose correlation with the input is {r:.3}")
            },
            expected: format!(
                "the same field as the image without its noise, registered to it: a \
                 correlation of at least {MIN_TARGET_CORRELATION} (another field, a shifted \
                 or an inverted one correlates less)"
            ),
        });
    }
    let a = cov / (ts * ts);
    Ok((a, xm - a * tm))
}

/// How often a watched training publishes what its current weights make of the image
/// ([`Control::wants_interim`]): often enough to watch, rarely enough that applying the
/// network (a tenth of the training's time on a preview region) costs little.
const INTERIM_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// `net` applied to every plane of the normalised image on the mirror images `flips`,
/// returned to the image's scale; each plane advances `progress` (control, total units)
/// when given. The CPU's forward pass, which the GPU host's must equal.
///
/// # Errors
/// [`DenoiseError::Cancelled`] through `progress`.
pub fn apply_all(
    net: &Net,
    norm: &[f32],
    s: Shape,
    (mean, std): (f64, f64),
    flips: &[(bool, bool)],
    progress: Option<(&Control, u64)>,
) -> Result<Volume> {
    let plane = s.height * s.width;
    let mut out = Array3::<f32>::zeros((s.depth, s.height, s.width));
    // Invariant: freshly allocated, standard layout.
    let dst = out.as_slice_mut().unwrap_or(&mut []);
    for (z, o) in dst.chunks_mut(plane).enumerate() {
        apply(net, &norm[z * plane..(z + 1) * plane], (s.height, s.width), flips, o);
        for v in o.iter_mut() {
            *v = (f64::from(*v) * std + mean) as f32;
        }
        if let Some((ctl, total)) = progress {
            ctl.advance(1, total)?;
        }
    }
    Ok(out)
}

/// The training loss in words for a front end's progress line, averaged over the last
/// [`LossReport::WINDOW`] steps (one patch's loss is noisy): where it started and where it
/// is, so a user sees it fall and level off.
struct LossReport {
    steps: usize,
    recent: std::collections::VecDeque<f64>,
    first: Option<f64>,
    done: usize,
}

impl LossReport {
    const WINDOW: usize = 20;

    fn new(steps: usize) -> Self {
        Self {
            steps,
            recent: std::collections::VecDeque::with_capacity(Self::WINDOW),
            first: None,
            done: 0,
        }
    }

    /// Records one step's loss; every `WINDOW` steps and at the last, the note to show.
    fn add(&mut self, loss: f64) -> Option<String> {
        self.done += 1;
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(loss);
        if !self.done.is_multiple_of(Self::WINDOW) && self.done != self.steps {
            return None;
        }
        let mean = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
        let first = *self.first.get_or_insert(mean);
        Some(format!(
            "training step {}/{}: loss {} (started at {})",
            self.done,
            self.steps,
            short(mean),
            short(first),
        ))
    }
}

/// A loss with enough digits to see it fall.
fn short(x: f64) -> String {
    if x.abs() >= 0.01 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// Mean and standard deviation, summed in f64 in one fixed order.
fn mean_std(x: &[f32]) -> (f64, f64) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

/// An `h` x `w` plane mirrored left-right and/or top-bottom (its own inverse): a copy, or
/// the plane itself when neither.
fn flipped(img: &[f32], (h, w): (usize, usize), (fy, fx): (bool, bool)) -> std::borrow::Cow<'_, [f32]> {
    if !fy && !fx {
        // The identity, the one pass of a refined apply: no copy of the plane.
        return std::borrow::Cow::Borrowed(img);
    }
    let mut out = vec![0.0; h * w];
    for (y, row) in out.chunks_mut(w).enumerate() {
        let sy = if fy { h - 1 - y } else { y };
        let src = &img[sy * w..(sy + 1) * w];
        if fx {
            row.iter_mut().zip(src.iter().rev()).for_each(|(o, &v)| *o = v);
        } else {
            row.copy_from_slice(src);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The four mirror images of a plane, each (mirror the rows, mirror the columns). Training
/// draws one at random per patch; applied unrefined ([`mirror_images`]), the network runs
/// on each and the results, mirrored back, are averaged (its errors differ between them;
/// the image does not).
pub const FLIPS: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

/// The mirror images ([`FLIPS`]) the network is applied to: all four for the network's
/// output alone (`refine = 0`, and the preview while training), the image itself when the
/// Wiener refinement follows. The refinement averages every pixel over the matched blocks
/// that cover it, which is what the mirrors' average did: on real widefield pairs the four
/// gave the same result as one within 0.02 dB once refined, in about half the time
/// (docs/benchmarks.md, "Learned denoiser: mirror images under the refinement"). Where the
/// refinement then leaves the image (noise negligible against its range), the result is
/// the one pass.
pub fn mirror_images(p: &ZsN2nParams) -> &'static [(bool, bool)] {
    if p.refines() { &FLIPS[..1] } else { &FLIPS }
}

/// `x - net(x)` on one normalised plane, averaged over the mirror images `flips`, in bands
/// of rows.
fn apply(net: &Net, img: &[f32], (h, w): (usize, usize), flips: &[(bool, bool)], out: &mut [f32]) {
    debug_assert!(!flips.is_empty(), "at least the image itself");
    let band = band_rows(h);
    let share = 1.0 / flips.len() as f32;
    out.fill(0.0);
    for &flip in flips {
        let src = flipped(img, (h, w), flip);
        let mut denoised = vec![0.0f32; h * w];
        for y0 in (0..h).step_by(band) {
            let y1 = (y0 + band).min(h);
            let pass = net::forward(net, &src, (h, w), (y0, y1));
            for ((o, &x), &n) in denoised[y0 * w..y1 * w]
                .iter_mut()
                .zip(&src[y0 * w..y1 * w])
                .zip(&pass.net)
            {
                *o = x - n;
            }
        }
        for (o, v) in out.iter_mut().zip(flipped(&denoised, (h, w), flip).iter()) {
            *o += share * v;
        }
    }
}

/// Adam's decay rates of the first and second moments, and its ε.
pub const ADAM_B1: f64 = 0.9;
/// See [`ADAM_B1`].
pub const ADAM_B2: f64 = 0.999;
/// See [`ADAM_B1`].
pub const ADAM_EPS: f32 = 1e-8;

/// Adam's state: the first and second moments of every weight, and the running average
/// of the weights over the second half of training ([`Step::average`]).
struct Adam {
    m: Net,
    v: Net,
    average: Net,
}

impl Adam {
    fn new(net: &Net) -> Self {
        Self {
            m: net.zeros_like(),
            v: net.zeros_like(),
            average: net.zeros_like(),
        }
    }

    fn step(&mut self, net: &mut Net, grads: &Net, step: &Step) {
        let (b1, b2) = (ADAM_B1 as f32, ADAM_B2 as f32);
        let params = net.tensors_mut();
        let ms = self.m.tensors_mut();
        let vs = self.v.tensors_mut();
        let avgs = self.average.tensors_mut();
        let tensors = params.into_iter().zip(grads.tensors()).zip(ms).zip(vs).zip(avgs);
        for ((((w, g), m), v), a) in tensors {
            let each = w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()).zip(a.iter_mut());
            for ((((w, &g), m), v), a) in each {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                let mh = *m / step.c1;
                let vh = *v / step.c2;
                *w -= step.lr * mh / (vh.sqrt() + ADAM_EPS);
                if step.average > 0.0 {
                    *a += step.average * (*w - *a);
                }
            }
        }
    }

    /// The network trained so far: the weights' running average once it has begun.
    fn result<'n>(&'n self, net: &'n Net, averaging: bool) -> &'n Net {
        if averaging { &self.average } else { net }
    }
}

/// One training step's inputs ([`Schedule::next`]).
#[derive(Debug, Clone)]
pub struct Step {
    /// A random mirror image of a random square of the stack, `side` x `side`.
    pub patch: Vec<f32>,
    /// The same square of the supervised target, mirrored the same way.
    pub target: Option<Vec<f32>>,
    /// Adam's step size.
    pub lr: f32,
    /// Adam's bias corrections, `1 − β1^t` and `1 − β2^t`.
    pub c1: f32,
    /// See `c1`.
    pub c2: f32,
    /// The weight of this step's weights in their running average, `avg += average ·
    /// (w − avg)`: 0 in the first half of training, then `1/k` at its `k`-th step, so
    /// that the network trained is the mean of the second half's weights.
    pub average: f32,
}

/// The training's random choices and step sizes, shared by the CPU's [`train`] and the
/// GPU's trainer: both start from the same weights and see the same patches in the same
/// order, so a GPU differs from the CPU only by the rounding of its sums.
pub struct Schedule<'a> {
    data: Data<'a>,
    s: Shape,
    area: Rect,
    rng: Rng,
    /// Side of the square patches: even, at most the training area.
    pub side: usize,
    steps: usize,
    learning_rate: f64,
    step: usize,
    /// `β1^t` and `β2^t`, kept as running products (the same bits on every platform).
    b1t: f64,
    b2t: f64,
}

impl<'a> Schedule<'a> {
    /// The schedule of training on `data` and the initial network.
    ///
    /// # Errors
    /// Patches that [`check_view`] refuses.
    pub fn new(data: Data<'a>, s: Shape, p: &ZsN2nParams) -> Result<(Self, Net)> {
        let (area, side) = checked_patches(s, p)?;
        // Only synthetic settings on data other than the scenes they are made for.
        if side > area.width.min(area.height) {
            return Err(DenoiseError::invalid(format!(
                "training patches of {side}x{side} pixels do not fit the {}x{} training area",
                area.width, area.height
            )));
        }
        let mut rng = Rng::new(p.seed as u64 ^ 0x2a5e_2e2a);
        let net = Net::init(p.width, p.layers, &mut rng);
        let schedule = Self {
            data,
            s,
            area,
            rng,
            side,
            steps: p.steps,
            learning_rate: p.learning_rate,
            step: 0,
            b1t: 1.0,
            b2t: 1.0,
        };
        Ok((schedule, net))
    }

    /// The next step, or `None` after the last.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Step> {
        if self.step == self.steps {
            return None;
        }
        let (s, side, area) = (self.s, self.side, self.area);
        let rng = &mut self.rng;
        let pick = |rng: &mut Rng, n: usize| ((rng.uniform() * n as f64) as usize).min(n - 1);
        let z = pick(rng, s.depth);
        let y0 = area.y + pick(rng, area.height - side + 1);
        let x0 = area.x + pick(rng, area.width - side + 1);
        let square = |img: &[f32]| {
            let mut patch = vec![0.0f32; side * side];
            for (r, row) in patch.chunks_mut(side).enumerate() {
                let at = (z * s.height + y0 + r) * s.width + x0;
                row.copy_from_slice(&img[at..at + side]);
            }
            patch
        };
        // A random mirror image of the patch: four times the training data.
        let flip = FLIPS[pick(rng, FLIPS.len())];
        let patch = flipped(&square(self.data.norm), (side, side), flip).into_owned();
        let target = (self.data.target).map(|t| flipped(&square(t), (side, side), flip).into_owned());
        // Halved for the second half, as Mansour & Heckel's schedule.
        let lr = if 2 * self.step < self.steps {
            self.learning_rate
        } else {
            self.learning_rate / 2.0
        };
        // The weights wander around a minimum by the step size: their mean over the
        // second half sits closer to it than the last step's (Polyak averaging; Noise2Fast
        // averages its last outputs to the same end), over the steps taken at the halved
        // rate. A single step is not averaged: its network is its weights.
        let first = self.steps.div_ceil(2);
        let average = match self.step.checked_sub(first) {
            Some(k) => 1.0 / (k + 1) as f32,
            None => 0.0,
        };
        self.step += 1;
        self.b1t *= ADAM_B1;
        self.b2t *= ADAM_B2;
        Some(Step {
            patch,
            target,
            lr: lr as f32,
            c1: (1.0 - self.b1t) as f32,
            c2: (1.0 - self.b2t) as f32,
            average,
        })
    }
}

/// The two half-resolution sub-images of a `p` x `p` patch: means of the anti-diagonal
/// and of the diagonal pixel pair of each 2x2 block.
pub fn halves(patch: &[f32], p: usize) -> (Vec<f32>, Vec<f32>) {
    let q = p / 2;
    let mut d1 = vec![0.0; q * q];
    let mut d2 = vec![0.0; q * q];
    for i in 0..q {
        for j in 0..q {
            let at = |y: usize, x: usize| patch[(2 * i + y) * p + 2 * j + x];
            d1[i * q + j] = 0.5 * (at(0, 1) + at(1, 0));
            d2[i * q + j] = 0.5 * (at(0, 0) + at(1, 1));
        }
    }
    (d1, d2)
}

/// The loss of one patch and its gradient with respect to the weights (added to `grads`).
fn loss_and_grad(net: &Net, patch: &[f32], p: usize, grads: &mut Net) -> f64 {
    let q = p / 2;
    let (y1, y2) = halves(patch, p);
    let full = net::forward(net, patch, (p, p), (0, p));
    let pass1 = net::forward(net, &y1, (q, q), (0, q));
    let pass2 = net::forward(net, &y2, (q, q), (0, q));
    // g(z) = z - net(z) for the halves and the patch.
    let a: Vec<f32> = y1.iter().zip(&pass1.net).map(|(y, n)| y - n).collect();
    let b: Vec<f32> = y2.iter().zip(&pass2.net).map(|(y, n)| y - n).collect();
    let f: Vec<f32> = patch.iter().zip(&full.net).map(|(y, n)| y - n).collect();
    let (f1, f2) = halves(&f, p);
    let m = (q * q) as f32;
    let mut loss = 0.0f64;
    let mut ga = vec![0.0f32; q * q];
    let mut gb = vec![0.0f32; q * q];
    let mut gf1 = vec![0.0f32; q * q];
    let mut gf2 = vec![0.0f32; q * q];
    // Gradients with respect to the network's outputs: g(z) = z - net(z), so each is
    // minus the gradient with respect to g.
    for i in 0..q * q {
        let (ra, rb) = (a[i] - y2[i], b[i] - y1[i]);
        let (ca, cb) = (a[i] - f1[i], b[i] - f2[i]);
        loss += 0.5 * f64::from(ra * ra + rb * rb + ca * ca + cb * cb);
        ga[i] = -(ra + ca) / m;
        gb[i] = -(rb + cb) / m;
        gf1[i] = ca / m;
        gf2[i] = cb / m;
    }
    let mut gf = vec![0.0f32; p * p];
    for i in 0..q {
        for j in 0..q {
            let k = i * q + j;
            gf[(2 * i) * p + 2 * j + 1] += 0.5 * gf1[k];
            gf[(2 * i + 1) * p + 2 * j] += 0.5 * gf1[k];
            gf[(2 * i) * p + 2 * j] += 0.5 * gf2[k];
            gf[(2 * i + 1) * p + 2 * j + 1] += 0.5 * gf2[k];
        }
    }
    let wt = net.w2_transposed();
    net::backward(net, &wt, &full, &gf, grads);
    net::backward(net, &wt, &pass1, &ga, grads);
    net::backward(net, &wt, &pass2, &gb, grads);
    loss / f64::from(m)
}

/// The four chequerboard sub-images of a `p` x `p` patch (`p` even): from each row the
/// pixels where row + column is even, then where it is odd (`p` rows of `p / 2`), and the
/// same from each column (`p / 2` rows of `p`). Each pair's noise is independent when the
/// image's is independent between pixels, and as strong as the image's.
pub fn chequerboard(patch: &[f32], p: usize) -> [Vec<f32>; 4] {
    let q = p / 2;
    let mut out: [Vec<f32>; 4] = std::array::from_fn(|_| vec![0.0; p * q]);
    let [even_r, odd_r, even_c, odd_c] = &mut out;
    for i in 0..p {
        for k in 0..q {
            even_r[i * q + k] = patch[i * p + 2 * k + i % 2];
            odd_r[i * q + k] = patch[i * p + 2 * k + 1 - i % 2];
        }
    }
    for k in 0..q {
        for j in 0..p {
            even_c[k * p + j] = patch[(2 * k + j % 2) * p + j];
            odd_c[k * p + j] = patch[(2 * k + 1 - j % 2) * p + j];
        }
    }
    out
}

/// The chequerboard loss of one patch (Noise2Fast's pairs, with the squared error of
/// `x − net(x)`): each sub-image of [`chequerboard`] denoised is scored against its
/// partner, half the mean squared difference over the four; its gradient is added to
/// `grads`.
fn chequerboard_loss_and_grad(net: &Net, patch: &[f32], p: usize, grads: &mut Net) -> f64 {
    let q = p / 2;
    let [even_r, odd_r, even_c, odd_c] = chequerboard(patch, p);
    let wt = net.w2_transposed();
    let m = (4 * p * q) as f32;
    let mut loss = 0.0f64;
    let pairs = [
        (&even_r, &odd_r, (p, q)),
        (&odd_r, &even_r, (p, q)),
        (&even_c, &odd_c, (q, p)),
        (&odd_c, &even_c, (q, p)),
    ];
    for (x, partner, dims) in pairs {
        let pass = net::forward(net, x, dims, (0, dims.0));
        let g = towards(x, &pass.net, partner, m, &mut loss);
        net::backward(net, &wt, &pass, &g, grads);
    }
    loss / f64::from(m)
}

/// The gradient, with respect to the network's output `n`, of half the squared
/// difference between `x − n` and `t` divided by `m` (minus that with respect to
/// `x − n`); the summed squares' half is added to `loss`.
fn towards(x: &[f32], n: &[f32], t: &[f32], m: f32, loss: &mut f64) -> Vec<f32> {
    (x.iter().zip(n).zip(t))
        .map(|((x, n), t)| {
            let r = x - n - t;
            *loss += 0.5 * f64::from(r * r);
            -r / m
        })
        .collect()
}

/// The supervised loss of one patch, half the mean squared difference between
/// `x − net(x)` and the target's patch, and its gradient (added to `grads`).
fn supervised_loss_and_grad(net: &Net, patch: &[f32], target: &[f32], p: usize, grads: &mut Net) -> f64 {
    let full = net::forward(net, patch, (p, p), (0, p));
    let m = (p * p) as f32;
    let mut loss = 0.0f64;
    let g = towards(patch, &full.net, target, m, &mut loss);
    net::backward(net, &net.w2_transposed(), &full, &g, grads);
    loss / f64::from(m)
}

/// The error of a training whose loss stopped being finite at `step`.
fn diverged(p: &ZsN2nParams, step: usize) -> DenoiseError {
    DenoiseError::InvalidParamValue {
        name: "learning_rate".into(),
        value: crate::fmt_num(p.learning_rate),
        expected: format!(
            "a smaller learning rate: the training diverged (its loss was no longer finite \
             at step {step} of {}); nothing was saved",
            p.steps
        ),
    }
}

/// Trains a network on patches of `data` on the CPU; `step_done` is called after each step
/// with its loss and the network so far (and may cancel). The network is the mean of
/// the second half's weights ([`Step::average`]).
///
/// # Errors
/// What `step_done` returns.
pub fn train(
    data: Data<'_>,
    s: Shape,
    p: &ZsN2nParams,
    mut step_done: impl FnMut(f64, &Net) -> Result<()>,
) -> Result<Net> {
    let (mut schedule, mut net) = Schedule::new(data, s, p)?;
    let mut adam = Adam::new(&net);
    let mut averaging = false;
    while let Some(step) = schedule.next() {
        let mut grads = net.zeros_like();
        let loss = match &step.target {
            Some(t) => supervised_loss_and_grad(&net, &step.patch, t, schedule.side, &mut grads),
            None if p.subimages == Subimages::Chequerboard => {
                chequerboard_loss_and_grad(&net, &step.patch, schedule.side, &mut grads)
            }
            None => loss_and_grad(&net, &step.patch, schedule.side, &mut grads),
        };
        adam.step(&mut net, &grads, &step);
        averaging = step.average > 0.0;
        step_done(loss, adam.result(&net, averaging))?;
    }
    Ok(if averaging { adam.average } else { net })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy_patch(p: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..p * p)
            .map(|i| ((i % p) as f32 / p as f32) + 0.3 * rng.normal() as f32)
            .collect()
    }

    /// The hand-written gradients against central finite differences of the losses, for
    /// weights of every tensor: the zero-shot loss and the supervised one.
    #[test]
    fn gradients_match_finite_differences() {
        let patch = noisy_patch(6, 4);
        let target = noisy_patch(6, 5);
        check_gradient(|net, grads| loss_and_grad(net, &patch, 6, grads));
        check_gradient(|net, grads| chequerboard_loss_and_grad(net, &patch, 6, grads));
        check_gradient(|net, grads| supervised_loss_and_grad(net, &patch, &target, 6, grads));
    }

    fn check_gradient(loss: impl Fn(&Net, &mut Net) -> f64) {
        for layers in [2, 4] {
            check_gradient_of(layers, &loss);
        }
    }

    fn check_gradient_of(layers: usize, loss: &impl Fn(&Net, &mut Net) -> f64) {
        let mut rng = Rng::new(3);
        let net = Net::init(3, layers, &mut rng);
        assert_eq!(net.flat().len(), Net::count(3, layers));
        let mut grads = net.zeros_like();
        loss(&net, &mut grads);
        let loss_at = |n: &Net| {
            let mut g = n.zeros_like();
            loss(n, &mut g)
        };
        let mut checked = 0;
        for t in 0..6 {
            let len = net.tensors()[t].len();
            for i in (0..len).step_by((len / 5).max(1)) {
                // Small enough that a bias's shift of the deeper maps crosses no leaky
                // ReLU's kink (1e-2 did, at one bias of four layers), large enough to
                // stay clear of the loss's rounding.
                let eps = 2e-3f32;
                let mut plus = net.clone();
                plus.tensors_mut()[t][i] += eps;
                let mut minus = net.clone();
                minus.tensors_mut()[t][i] -= eps;
                let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps));
                let an = f64::from(grads.tensors()[t][i]);
                assert!(
                    (fd - an).abs() <= 2e-3 + 0.03 * fd.abs().max(an.abs()),
                    "{layers} layers, tensor {t} weight {i}: finite difference {fd}, gradient {an}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 20);
    }

    /// Supervised training learns the target: closer to the clean scene than zero-shot
    /// training at the same budget, and the same network whatever the target's gain and
    /// offset (it is fitted onto the image first). A missing, misshapen or inverted target
    /// is refused, naming it.
    #[test]
    fn pairs_learn_the_target_whatever_its_scale() {
        let scene = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (1, 48, 48),
            seed: 21,
            read_noise: 0.15,
            ..Default::default()
        });
        let (clean, noisy) = (scene.clean, scene.noisy);
        let p = ZsN2nParams {
            steps: 150,
            width: 8,
            layers: 2,
            learning_rate: 0.005,
            patch: 32,
            seed: 2,
            training: Training::Pairs,
            subimages: Subimages::Chequerboard,
            psf_sigma: 1.5,
            // What the networks learnt is compared, without the refinement after both.
            refine: 0.0,
            train_region: Region::default(),
            weights: FilePath::default(),
            save_weights: FilePath::default(),
        };
        let ctl = Control::new();
        let pairs = denoise(noisy.view(), Teacher::Target(clean.view()), &p, &ctl).unwrap();
        let zero = ZsN2nParams { training: Training::Zero, ..p.clone() };
        let alone = denoise(noisy.view(), Teacher::None, &zero, &ctl).unwrap();
        let mse = |a: &Volume| crate::metrics::mse(&clean.view(), &a.view()).unwrap();
        assert!(
            mse(&pairs) < 0.8 * mse(&alone),
            "supervised {} against zero-shot {}",
            mse(&pairs),
            mse(&alone)
        );
        // A target stretched to another range (as a frame average converted to 8 bits).
        let stretched = clean.mapv(|v| 180.0 * v + 12.0);
        let again = denoise(noisy.view(), Teacher::Target(stretched.view()), &p, &ctl).unwrap();
        let (lo, hi) = crate::volume::min_max(&noisy.view());
        let worst = (again.iter().zip(pairs.iter()))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-2 * (hi - lo), "{worst}");
        let refused = |t: Option<&Volume>, why: &str| {
            let teacher = t.map_or(Teacher::None, |t| Teacher::Target(t.view()));
            let e = denoise(noisy.view(), teacher, &p, &ctl)
                .unwrap_err()
                .to_string();
            assert!(e.contains(TARGET_IMAGE) && e.contains(why), "{e}");
        };
        refused(None, "training=pairs");
        refused(Some(&Array3::zeros((1, 48, 40))), "48x48x1");
        refused(Some(&clean.mapv(|v| -v)), "correlation");
        let elsewhere = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (1, 48, 48),
            seed: 22,
            ..Default::default()
        });
        refused(Some(&elsewhere.clean), "at least 0.2");
        refused(Some(&Array3::from_elem((1, 48, 48), 2.0)), "constant");
        // With steps = 0 nothing trains, but a missing target is refused all the same, as a
        // bad train_region is: the macro is wrong either way.
        let untrained = ZsN2nParams { steps: 0, ..p.clone() };
        assert!(denoise(noisy.view(), Teacher::None, &untrained, &ctl).is_err());
    }

    /// Synthetic scenes carry the image's noise and span its intensities, under white
    /// Gaussian noise and under a Poisson–Gaussian model (stabilised: unit noise, unbiased
    /// clean scenes); a network trained on them alone denoises an image it never saw.
    #[test]
    fn synthetic_scenes_teach_the_image_s_noise() {
        let scene = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (1, 64, 64),
            seed: 31,
            read_noise: 0.08,
            ..Default::default()
        });
        let (clean, noisy) = (scene.clean.mapv(|v| 200.0 * v + 50.0), scene.noisy.mapv(|v| 200.0 * v + 50.0));
        let p = ZsN2nParams {
            steps: 200,
            width: 8,
            layers: 2,
            learning_rate: 0.005,
            patch: 32,
            seed: 5,
            training: Training::Synthetic,
            subimages: Subimages::Chequerboard,
            psf_sigma: 1.2,
            // What the network learnt is measured, without the refinement after it.
            refine: 0.0,
            train_region: Region::default(),
            weights: FilePath::default(),
            save_weights: FilePath::default(),
        };
        let spread = |a: &Volume, b: &Volume| {
            let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
            mean_std(&d)
        };
        let pair = synthetic_pair(noisy.view(), &p, None).unwrap();
        assert_eq!(pair.noisy.dim(), (SCENE.depth, SCENE.height, SCENE.width));
        let (bias, sigma) = spread(&pair.noisy, &pair.clean);
        assert!(bias.abs() < 0.1 && (sigma / 16.0 - 1.0).abs() < 0.05, "noise {bias} ± {sigma}");
        let (lo, hi) = intensity_range(clean.view());
        let (slo, shi) = intensity_range(pair.clean.view());
        assert!((slo - lo).abs() < 1.5 && (shi - hi).abs() < 4.0, "{slo}..{shi} against {lo}..{hi}");
        assert_eq!(synthetic_pair(noisy.view(), &p, None).unwrap().noisy, pair.noisy, "seeded");

        let ctl = Control::new();
        let out = denoise(noisy.view(), Teacher::None, &p, &ctl).unwrap();
        let mse = |a: &Volume| crate::metrics::mse(&clean.view(), &a.view()).unwrap();
        assert!(mse(&out) < 0.2 * mse(&noisy), "{} against {}", mse(&out), mse(&noisy));

        // Photon noise at a gain of 3 grey levels per photon, stabilised as the pipeline
        // does it: the scenes' noise is then 1 and their clean version its mean.
        let gat = crate::noise::vst::Gat::new(3.0, 20.0, 2.0);
        let mut rng = Rng::new(4);
        let grey = gat.sample(&clean.view(), &mut rng);
        let pair = synthetic_pair(gat.forward(&grey.view()).view(), &p, Some(&gat)).unwrap();
        let (bias, sigma) = spread(&pair.noisy, &pair.clean);
        assert!(bias.abs() < 0.02 && (sigma - 1.0).abs() < 0.05, "noise {bias} ± {sigma}");
        let (slo, shi) = intensity_range(gat.inverse(pair.clean).view());
        assert!((slo - lo).abs() < 1.5 && (shi - hi).abs() < 4.0, "{slo}..{shi} against {lo}..{hi}");
    }

    /// Applying in bands of rows gives the whole plane's result bit for bit: a band reads
    /// the rows around it from the image, and zero padding is only at the image's edges.
    #[test]
    fn bands_of_rows_give_the_whole_plane() {
        let mut rng = Rng::new(9);
        let net = Net::init(5, 3, &mut rng);
        let (h, w) = (37, 23);
        let img = noisy_patch(40, 2)[..h * w].to_vec();
        let whole = net::forward(&net, &img, (h, w), (0, h)).net;
        for band in [1, 4, 16] {
            let mut pieces = Vec::new();
            for y0 in (0..h).step_by(band) {
                pieces.extend(net::forward(&net, &img, (h, w), (y0, (y0 + band).min(h))).net);
            }
            assert_eq!(pieces, whole, "bands of {band} rows");
        }
    }

    /// A tiny zero-shot training of `steps` steps on 16x16 patches.
    fn small_zero_shot(steps: usize) -> ZsN2nParams {
        ZsN2nParams {
            steps,
            width: 4,
            layers: 2,
            learning_rate: 0.005,
            patch: 16,
            seed: 7,
            training: Training::Zero,
            subimages: Subimages::Chequerboard,
            psf_sigma: 1.5,
            refine: DEFAULT_REFINE,
            train_region: Region::default(),
            weights: FilePath::default(),
            save_weights: FilePath::default(),
        }
    }

    /// Training lowers the loss and the same seed gives the same weights, whatever the
    /// thread count.
    #[test]
    fn training_is_deterministic_and_learns() {
        let s = Shape::new(1, 24, 24);
        let img = noisy_patch(24, 5);
        let p = small_zero_shot(60);
        let mut losses = Vec::new();
        let a = train(Data::of(&img), s, &p, |l, _| {
            losses.push(l);
            Ok(())
        })
        .unwrap();
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = one_thread.install(|| train(Data::of(&img), s, &p, |_, _| Ok(())).unwrap());
        assert_eq!(a, b);
        let early: f64 = losses[..10].iter().sum();
        let late: f64 = losses[losses.len() - 10..].iter().sum();
        assert!(late < early, "loss {early} -> {late}");
    }

    /// The trained network is the mean of the weights after each step of the second half
    /// (from step `ceil(steps / 2)`, counted from 0, where the learning rate halves), and
    /// so is the network so far from there on; before it, and for a single step, the
    /// network is the last step's weights.
    #[test]
    fn the_network_is_the_mean_of_the_second_half() {
        let s = Shape::new(1, 24, 24);
        let img = noisy_patch(24, 9);
        for steps in [1, 2, 7, 8] {
            let p = ZsN2nParams {
                layers: 3,
                learning_rate: 0.01,
                seed: 2,
                ..small_zero_shot(steps)
            };
            // The steps by hand, keeping every step's raw weights.
            let (mut schedule, mut net) = Schedule::new(Data::of(&img), s, &p).unwrap();
            let mut adam = Adam::new(&net);
            let mut raw = Vec::new();
            while let Some(step) = schedule.next() {
                let mut grads = net.zeros_like();
                chequerboard_loss_and_grad(&net, &step.patch, schedule.side, &mut grads);
                adam.step(&mut net, &grads, &step);
                raw.push(net.flat());
            }
            let mut so_far = Vec::new();
            let trained = train(Data::of(&img), s, &p, |_, n| {
                so_far.push(n.flat());
                Ok(())
            })
            .unwrap()
            .flat();
            assert_eq!(so_far.last(), Some(&trained), "steps {steps}");
            // Averaged from where the rate halves; a single step is its own network.
            let first = steps.div_ceil(2).min(steps - 1);
            assert_eq!(so_far[..first], raw[..first], "steps {steps}: before the average");
            for k in first..steps {
                let averaged = &raw[first..=k];
                for (i, &w) in so_far[k].iter().enumerate() {
                    let mean = averaged.iter().map(|r| f64::from(r[i])).sum::<f64>() / averaged.len() as f64;
                    let off = (f64::from(w) - mean).abs();
                    assert!(off < 1e-6, "steps {steps}, after step {k}, weight {i}: {w} against the mean {mean}");
                }
            }
            // The last step's weights are not the average: the test could tell them apart.
            let apart = raw[steps - 1].iter().zip(&trained).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(steps < 7 || apart > 1e-4, "steps {steps}: averaged and last weights differ by {apart}");
        }
    }

    /// Weights saved after training and applied from the file give the pixels of training
    /// and applying in one go, bit for bit; a bad file is refused naming it.
    #[test]
    fn saved_weights_replay_exactly() {
        let (dir, file, path) = weights_file("weights", "w b.json");
        let img = Array3::from_shape_vec((1, 24, 24), noisy_patch(24, 6)).unwrap();
        let other = Array3::from_shape_vec((2, 24, 24), [noisy_patch(24, 7), noisy_patch(24, 8)].concat())
            .unwrap();
        let mut p = saving(path, 30, 3);
        let trained = denoise_zs_n2n(img.view(), &p, &Control::new()).unwrap();
        p.save_weights = FilePath::default();
        p.weights = FilePath(path);
        // Training settings, the width and depth among them, are not used with a weights
        // file; the job's note names the network that runs (until the refinement's).
        p.steps = 0;
        p.seed = 99;
        let resized = ZsN2nParams {
            width: 9,
            layers: 2,
            ..p.clone()
        };
        let replayed = denoise_zs_n2n(img.view(), &resized, &Control::new()).unwrap();
        assert_eq!(trained, replayed);
        let ctl = Control::new();
        denoise_zs_n2n(img.view(), &ZsN2nParams { refine: 0.0, ..resized }, &ctl).unwrap();
        assert!(ctl.note().contains("width 4, 3 layers, as saved"), "{}", ctl.note());
        let (net, on) = weights::load(&file, "weights").unwrap();
        assert_eq!((net.c, net.layers, on.shape, on.steps, on.seed), (4, 3, [1, 24, 24], 30, 3));
        assert_eq!((on.training.as_deref(), on.psf_sigma), (Some("self"), None));
        // Another image, a stack: applied plane by plane with the same network.
        let out = denoise_zs_n2n(other.view(), &p, &Control::new()).unwrap();
        assert_eq!(out.dim(), other.dim());
        assert_ne!(out, other);

        let refuse = |text: &str, why: &str| {
            std::fs::write(&file, text).unwrap();
            let e = denoise_zs_n2n(img.view(), &p, &Control::new()).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("weights") && msg.contains(path) && msg.contains(why), "{msg}");
        };
        let good = std::fs::read_to_string(&file).unwrap();
        refuse("{\"a\": 1}", "not DenoiseKit weights");
        refuse(&good[..good.len() / 2], "damaged");
        // An image named by mistake is refused from its first bytes or its size, not
        // read whole first.
        refuse("II*\0 a TIFF", "not DenoiseKit weights");
        refuse("", "not DenoiseKit weights");
        std::fs::write(&file, "{").unwrap();
        std::fs::File::options().write(true).open(&file).unwrap().set_len(1 << 30).unwrap();
        let e = denoise_zs_n2n(img.view(), &p, &Control::new()).unwrap_err().to_string();
        assert!(e.contains("holds 1073741824 bytes, and weights files hold at most"), "{e}");
        // Three layers are version 2 (a build reading version 1 refuses it by version).
        assert!(good.contains("\"version\":2"));
        refuse(&good.replace("\"version\":2", "\"version\":7"), "version 7");
        refuse(&good.replace("\"zs_n2n\"", "\"other\""), "method other");
        // A tensor the network does not have: an edited or damaged file. A newer version,
        // whose tensors and fields may differ, is named as such.
        let extra = good.replace("\"tensors\":{", "\"tensors\":{\"w9\":[1.0],");
        refuse(&extra, "damaged: unknown field `w9`");
        let newer = extra.replace("\"version\":2", "\"version\":3");
        refuse(&newer.replace("\"width\":4,", ""), "it is version 3");
        refuse(&good.replace("\"width\":4", "\"width\":5"), "tensor w1 has 36 values");
        refuse(&good.replace("\"layers\":3", "\"layers\":9"), "`layers` = 9 is outside [2, 8]");
        // Through a job, whose memory check sizes the file's network first: a width far
        // out of range is named with its range, not stated as petabytes.
        std::fs::write(&file, good.replace("\"width\":4", "\"width\":1000000000")).unwrap();
        let values = crate::ParamValues::new().set("weights", path);
        let e = crate::run("zs_n2n", img.view(), &values, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("`width` = 1000000000 is outside"), "{e}");
        // Only a version 1 file may leave out `layers` (it was written before the depth
        // could be chosen, and holds 2); it may not claim more.
        refuse(&good.replace("\"layers\":3,", ""), "damaged: version 2 says its `layers`, and it has none");
        // Builds between the depth parameter and version 2 wrote deeper networks as version
        // 1 with their layers: read as they say.
        std::fs::write(&file, good.replace("\"version\":2", "\"version\":1")).unwrap();
        assert_eq!(weights::load(&file, "weights").unwrap().0.layers, 3);
        let two = Net::init(4, 2, &mut Rng::new(5));
        weights::save(&two, on.clone(), &file, "save_weights").unwrap();
        let old = std::fs::read_to_string(&file).unwrap();
        // Two layers are written as version 1, which older builds read.
        assert!(old.contains("\"version\":1"));
        let old = old.replace("\"layers\":2,", "");
        assert!(!old.contains("layers"));
        std::fs::write(&file, old).unwrap();
        assert_eq!(weights::load(&file, "weights").unwrap().0, two);
        // Training again replaces weights; a file of anything else (the image, named by
        // mistake) is refused before training and left as it was.
        p.weights = FilePath::default();
        p.save_weights = FilePath(path);
        p.steps = 30;
        denoise_zs_n2n(img.view(), &p, &Control::new()).unwrap();
        assert_eq!(weights::load(&file, "weights").unwrap().0.layers, 3);
        std::fs::write(&file, b"II*\0 an image").unwrap();
        let e = denoise_zs_n2n(img.view(), &p, &Control::new()).unwrap_err().to_string();
        assert!(e.contains("save_weights") && e.contains("is something else"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"II*\0 an image");
        p.save_weights = FilePath::default();
        p.weights = FilePath(path);
        std::fs::remove_file(&file).unwrap();
        refuse_missing(&img, &p, path);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh folder for one test's weights file `name`, the file's path, and the path as
    /// the `&'static str` a [`FilePath`] holds.
    fn weights_file(test: &str, name: &str) -> (std::path::PathBuf, std::path::PathBuf, &'static str) {
        let dir = std::env::temp_dir().join(format!("dk-zs-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        let path: &'static str = Box::leak(file.display().to_string().into_boxed_str());
        (dir, file, path)
    }

    /// A small network of `layers` trained for `steps` and saved to `path`.
    fn saving(path: &'static str, steps: usize, layers: usize) -> ZsN2nParams {
        ZsN2nParams {
            steps,
            width: 4,
            layers,
            learning_rate: 0.005,
            patch: 16,
            seed: 3,
            training: Training::Zero,
            subimages: Subimages::Chequerboard,
            psf_sigma: 1.5,
            refine: DEFAULT_REFINE,
            train_region: Region::default(),
            weights: FilePath::default(),
            save_weights: FilePath(path),
        }
    }

    /// A 24x24 noisy image, and a two-layer network trained on it for `steps` and saved
    /// in a fresh folder for `test`: the folder, the file, the image and the settings.
    fn saved_two_layers(test: &str, steps: usize) -> (std::path::PathBuf, std::path::PathBuf, Volume, ZsN2nParams) {
        let (dir, file, path) = weights_file(test, "w.json");
        let img = Array3::from_shape_vec((1, 24, 24), noisy_patch(24, 6)).unwrap();
        let p = saving(path, steps, 2);
        denoise_zs_n2n(img.view(), &p, &Control::new()).unwrap();
        (dir, file, img, p)
    }

    /// A training whose loss stops being finite ends there, naming the learning rate,
    /// and leaves the weights saved before as they were; non-finite weights are never
    /// written (JSON cannot hold them, so the file could not be read back).
    #[test]
    fn a_diverged_training_keeps_the_saved_weights() {
        let (dir, file, img, p) = saved_two_layers("diverged", 3);
        let good = std::fs::read(&file).unwrap();
        let steps = std::cell::Cell::new(0);
        let diverging = |_: Data<'_>, _: Shape, _: &ZsN2nParams, step_done: &mut StepDone<'_, DenoiseError>| {
            let net = Net::init(4, 2, &mut Rng::new(1));
            for loss in [0.5, f64::NAN, 0.5] {
                steps.set(steps.get() + 1);
                step_done(loss, &mut || Ok(net.clone()))?;
            }
            Ok(net)
        };
        let no_interim = |_: &Net, _: &[f32], _: Shape, _: (f64, f64)| -> Result<Volume> { unreachable!() };
        let e = train_or_load_with(img.view(), Teacher::None, &p, &Control::new(), diverging, no_interim).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("learning_rate") && msg.contains("diverged") && msg.contains("step 2 of 3"), "{msg}");
        assert_eq!(steps.get(), 2, "stopped at the first non-finite loss");
        assert_eq!(std::fs::read(&file).unwrap(), good);
        let mut nan = Net::init(4, 2, &mut Rng::new(1));
        nan.b3[0] = f32::NAN;
        let on = weights::load(&file, "weights").unwrap().1;
        let e = weights::save(&nan, on, &file, "save_weights").unwrap_err().to_string();
        assert!(e.contains("save_weights") && e.contains("not finite"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), good);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Weights of huge (finite) values take the network out of float range: the run is
    /// refused, not written as an image of NaN.
    #[test]
    fn weights_that_overflow_are_refused_not_applied() {
        let (dir, file, img, _) = saved_two_layers("huge", 2);
        let (mut net, on) = weights::load(&file, "weights").unwrap();
        for w in [&mut net.w1, &mut net.w2, &mut net.w3] {
            w.iter_mut().for_each(|v| *v = 3e38);
        }
        weights::save(&net, on, &file, "save_weights").unwrap();
        let values = crate::ParamValues::new()
            .set("weights", file.display())
            .set("noise_model", "gaussian");
        let e = crate::run("zs_n2n", img.view(), &values, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("out of floating-point range"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Training on a region draws every patch from inside it, on every plane, and a region
    /// outside the plane or too small for the network's view is refused naming it and the
    /// size it needs.
    #[test]
    fn training_draws_patches_from_the_region_only() {
        let s = Shape::new(2, 30, 40);
        let area = Rect {
            x: 5,
            y: 7,
            width: 20,
            height: 12,
        };
        let inside = |y: usize, x: usize| (area.y..area.y + area.height).contains(&y) && (area.x..area.x + area.width).contains(&x);
        let norm: Vec<f32> = (0..s.depth * s.height * s.width)
            .map(|i| {
                let (y, x) = ((i / s.width) % s.height, i % s.width);
                if inside(y, x) { 1.0 + (i % 7) as f32 } else { -1.0 }
            })
            .collect();
        let mut p = ZsN2nParams {
            steps: 200,
            width: 2,
            layers: 2,
            learning_rate: 0.002,
            patch: 64,
            seed: 1,
            training: Training::Zero,
            subimages: Subimages::Chequerboard,
            psf_sigma: 1.5,
            refine: DEFAULT_REFINE,
            train_region: Region(Some(area)),
            weights: FilePath::default(),
            save_weights: FilePath::default(),
        };
        let (mut schedule, _) = Schedule::new(Data::of(&norm), s, &p).unwrap();
        assert_eq!(schedule.side, 12, "the patch shrinks to the region");
        let mut firsts = std::collections::HashSet::new();
        while let Some(step) = schedule.next() {
            assert!(step.patch.iter().all(|&v| v >= 1.0), "a patch reached outside the region");
            firsts.insert(step.patch[0].to_bits());
        }
        assert!(firsts.len() > 3, "patches come from several places");
        for (x, y, width, height, why) in [(30, 0, 11, 4, "inside the 40x30 plane"), (0, 29, 4, 2, "inside the 40x30 plane"), (0, 0, 1, 5, "at least 10x10"), (0, 0, 20, 9, "at least 10x10 pixels with 2 layers")] {
            p.train_region = Region(Some(Rect { x, y, width, height }));
            let e = train(Data::of(&norm), s, &p, |_, _| Ok(())).unwrap_err().to_string();
            assert!(e.contains("train_region") && e.contains(why), "{e}");
            let img = Array3::from_shape_vec((2, 30, 40), norm.clone()).unwrap();
            let e = denoise_zs_n2n(img.view(), &p, &Control::new()).unwrap_err().to_string();
            assert!(e.contains("train_region") && e.contains(why), "{e}");
            // Not trained, but refused all the same: the macro is wrong either way.
            let untrained = ZsN2nParams { steps: 0, ..p.clone() };
            let e = denoise_zs_n2n(img.view(), &untrained, &Control::new()).unwrap_err().to_string();
            assert!(e.contains("train_region") && e.contains(why), "{e}");
        }
        // The patches as drawn are checked, whatever bounds them: a small `patch` (an odd
        // one is taken one smaller)...
        p.train_region = Region::default();
        p.patch = 10;
        assert!(check_view(s, &p).is_ok());
        p.patch = 9;
        let e = train(Data::of(&norm), s, &p, |_, _| Ok(())).unwrap_err().to_string();
        assert!(e.contains("`patch`") && e.ends_with("view: patch = 10 or more"), "{e}");
        // ... a small region, where fewer layers would fit...
        (p.patch, p.layers) = (64, 3);
        p.train_region = Region(Some(Rect { x: 3, y: 2, width: 12, height: 20 }));
        let e = train(Data::of(&norm), s, &p, |_, _| Ok(())).unwrap_err().to_string();
        assert!(e.contains("`train_region`") && e.contains("at least 14x14") && e.contains("(layers = 2, or a larger region)"), "{e}");
        // ... or a small image.
        p.train_region = Region::default();
        let small = Shape::new(1, 12, 40);
        let e = train(Data::of(&norm[..480]), small, &p, |_, _| Ok(())).unwrap_err();
        assert!(matches!(e, DenoiseError::InvalidInput { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("the image is 40x12") && e.contains("at least 14x14") && e.contains("use layers = 2, or train"), "{e}");
        // Only when it is trained on: untrained, or constant, it is returned as it is.
        let img = Array3::from_shape_vec((1, 12, 40), norm[..480].to_vec()).unwrap();
        let untrained = ZsN2nParams { steps: 0, ..p.clone() };
        assert_eq!(denoise_zs_n2n(img.view(), &untrained, &Control::new()).unwrap(), img);
        let flat = Array3::from_elem((1, 12, 40), 5.0f32);
        assert_eq!(denoise_zs_n2n(flat.view(), &p, &Control::new()).unwrap(), flat);
        assert!(denoise_zs_n2n(img.view(), &p, &Control::new()).is_err());
        // A patch too small is named even then, as the image would hide it until trained.
        let e = denoise_zs_n2n(img.view(), &ZsN2nParams { patch: 8, ..untrained }, &Control::new()).unwrap_err().to_string();
        assert!(e.contains("`patch`") && e.ends_with("view: patch = 14 or more"), "{e}");
        // Fewer layers are offered where they would fit; a patch is named before a region
        // that is too small as well.
        let e = check_view(s, &ZsN2nParams { patch: 12, ..p.clone() }).unwrap_err().to_string();
        assert!(e.ends_with("view: patch = 14 or more, or layers = 2"), "{e}");
        let region = Region(Some(Rect { x: 0, y: 0, width: 12, height: 12 }));
        let e = check_view(s, &ZsN2nParams { patch: 8, train_region: region, ..p.clone() }).unwrap_err().to_string();
        assert!(e.contains("`patch`") && e.ends_with("view: patch = 14 or more"), "{e}");
        // Refused before save_weights makes its folders.
        let dir = std::env::temp_dir().join(format!("dk-zs-small-{}", std::process::id()));
        let path: &'static str = Box::leak(dir.join("new").join("w.json").display().to_string().into_boxed_str());
        let saving_small = ZsN2nParams { save_weights: FilePath(path), ..p.clone() };
        assert!(denoise_zs_n2n(img.view(), &saving_small, &Control::new()).is_err());
        assert!(!dir.exists(), "{} was made", dir.display());
        // Supervised patches are not halved: they need the view alone.
        let pairs = ZsN2nParams { training: Training::Pairs, ..p.clone() };
        assert!(check_view(small, &pairs).is_ok());
        let tiny = Shape::new(1, 5, 40);
        let e = check_view(tiny, &pairs).unwrap_err().to_string();
        assert!(e.contains("needs at least 8x8 pixels with 3 layers: each training patch must hold the network's 7x7 view: train on a larger image"), "{e}");
        let e = check_view(small, &ZsN2nParams { patch: 7, ..pairs.clone() }).unwrap_err().to_string();
        assert!(e.contains("`patch`") && e.ends_with("view: patch = 8 or more, or layers = 2"), "{e}");
        // Synthetic scenes are large whatever the image: its size bounds the patches only
        // down to the view, and only `patch` itself can be too small.
        let synthetic = ZsN2nParams { training: Training::Synthetic, ..p.clone() };
        assert!(check_view(tiny, &synthetic).is_ok());
        assert_eq!(patch_side(tiny, &synthetic), 8);
        assert_eq!(patch_side(s, &synthetic), 30);
        let region = Region(Some(Rect { x: 0, y: 0, width: 7, height: 5 }));
        let e = check_view(s, &ZsN2nParams { train_region: region, ..synthetic.clone() }).unwrap_err().to_string();
        assert!(e.contains("`train_region`") && e.contains("at least 8x8 pixels with 3 layers: the synthetic"), "{e}");
        let e = check_view(tiny, &ZsN2nParams { patch: 5, ..synthetic }).unwrap_err().to_string();
        assert!(e.contains("`patch`") && e.ends_with("view: patch = 8 or more"), "{e}");
    }

    /// A watched training publishes what its current weights make of the image, on the
    /// image's scale: through the noise model's inverse transform, as the result is.
    #[test]
    fn a_watched_training_publishes_interim_results() {
        let mut rng = Rng::new(5);
        // Photon counts around 500 at gain 2: the stabilised image is around 45.
        let img = Array3::from_shape_fn((1, 48, 40), |(_, y, x)| {
            let photons = 500.0 + 100.0 * ((y + x) as f64 / 10.0).sin();
            (2.0 * (photons + photons.sqrt() * rng.normal())) as f32
        });
        let values = crate::ParamValues::new()
            .set("steps", 100_000)
            .set("patch", 20)
            .set("noise_model", "poisson_gaussian")
            .set("gain", 2.0);
        let ctl = Control::new();
        assert!(ctl.take_interim().is_none(), "nothing before the job runs");
        let job = {
            let (img, ctl) = (img.clone(), ctl.clone());
            std::thread::spawn(move || crate::run("zs_n2n", img.view(), &values, &ctl))
        };
        let start = std::time::Instant::now();
        let interim = loop {
            if let Some(v) = ctl.take_interim() {
                break v;
            }
            assert!(!job.is_finished(), "{:?}", job.join());
            assert!(start.elapsed().as_secs() < 60, "no intermediate result in 60 s");
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        ctl.cancel();
        assert!(matches!(job.join().unwrap(), Err(DenoiseError::Cancelled)));
        assert_eq!(interim.dim(), img.dim());
        let mean = |a: &Array3<f32>| a.mean().unwrap();
        assert!((mean(&interim) - mean(&img)).abs() < 0.05 * mean(&img), "{} {}", mean(&interim), mean(&img));
        assert_ne!(interim, img);
    }

    /// The refinement is BM3D's Wiener stage on the network's output (applied once, not
    /// over the mirror images): `refine = 0` gives the network's output, and the default
    /// improves on it on a noisy phantom.
    #[test]
    fn the_wiener_refinement_improves_the_network_s_output() {
        let crate::phantom::Phantom { clean, noisy } = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (1, 64, 64),
            seed: 3,
            ..Default::default()
        });
        let p = ZsN2nParams {
            steps: 200,
            width: 8,
            patch: 32,
            refine: 0.0,
            ..small_zero_shot(0)
        };
        let ctl = Control::new();
        let alone = denoise_zs_n2n(noisy.view(), &p, &ctl).unwrap();
        let t = train_or_load(noisy.view(), Teacher::None, &p, &ctl).unwrap().unwrap();
        let s = Shape::of(&noisy.view());
        let applied = apply_all(&t.net, &t.norm, s, (t.mean, t.std), &FLIPS, None).unwrap();
        assert_eq!(alone, applied);
        // Refined, the network runs on the image alone, not its four mirror images.
        let q = ZsN2nParams {
            refine: DEFAULT_REFINE,
            ..p
        };
        let refined = denoise_zs_n2n(noisy.view(), &q, &ctl).unwrap();
        let pilot = apply_all(&t.net, &t.norm, s, (t.mean, t.std), &FLIPS[..1], None).unwrap();
        assert_ne!(pilot, applied);
        let sigma = crate::noise::estimate_sigma(&noisy.view()).unwrap() * DEFAULT_REFINE;
        let piloted =
            crate::methods::bm3d::wiener_with_pilot(noisy.view(), pilot.view(), sigma, &ctl, &|| Ok(())).unwrap();
        assert_eq!(refined, piloted);
        let err = |a: &Array3<f32>| (a - &clean).mapv(|d| f64::from(d * d)).mean().unwrap();
        assert!(err(&alone) < 0.5 * err(&noisy), "{} {}", err(&alone), err(&noisy));
        assert!(err(&refined) < 0.9 * err(&alone), "refined {} against {}", err(&refined), err(&alone));
    }

    /// The job's progress counts every training step, applied plane and refined plane,
    /// and is full only once the last plane is refined.
    #[test]
    fn progress_counts_the_refined_planes() {
        let img = crate::phantom::phantom(&crate::phantom::PhantomSpec {
            shape: (2, 24, 24),
            seed: 4,
            ..Default::default()
        })
        .noisy;
        let seen = progress_of_six_steps(&img);
        assert!(seen[..seen.len() - 1].iter().all(|&f| f < 1.0), "{seen:?}");
    }

    /// The progress fractions a job training six steps on `img` (two planes) reports,
    /// checked to be one per step, applied plane and refined plane and to end full.
    fn progress_of_six_steps(img: &Array3<f32>) -> Vec<f64> {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let ctl = Control::with_progress(move |f| sink.lock().unwrap().push(f));
        denoise_zs_n2n(img.view(), &small_zero_shot(6), &ctl).unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 6 + 2 + 2, "{seen:?}");
        assert_eq!(seen.last(), Some(&1.0), "{seen:?}");
        seen
    }

    /// Where the image has no noise to speak of the refinement has nothing to filter and
    /// passes the network's output on, and the progress still ends full.
    #[test]
    fn progress_ends_full_when_the_refinement_has_nothing_to_filter() {
        let img = Array3::from_shape_fn((2, 24, 24), |(z, y, x)| (z * 100 + y * 24 + x) as f32);
        let sigma = crate::noise::estimate_sigma(&img.view()).unwrap() * DEFAULT_REFINE;
        let (lo, hi) = crate::volume::min_max(&img.view());
        assert!(sigma <= 1e-6 * f64::from(hi - lo), "BM3D's plan would filter the ramp: {sigma}");
        progress_of_six_steps(&img);
    }

    fn refuse_missing(img: &Array3<f32>, p: &ZsN2nParams, path: &str) {
        let e = denoise_zs_n2n(img.view(), p, &Control::new()).unwrap_err();
        assert!(e.to_string().contains(path), "{e}");
        // A file that cannot be written (its folder would be a file) is refused before
        // any training step, naming it.
        let (dir, file, _) = weights_file("unwritable", "not-a-folder");
        std::fs::write(&file, b"an image").unwrap();
        let under: &'static str = Box::leak(file.join("w.json").display().to_string().into_boxed_str());
        let q = ZsN2nParams {
            weights: FilePath::default(),
            save_weights: FilePath(under),
            steps: 2,
            ..p.clone()
        };
        let trained = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = trained.clone();
        let ctl = Control::with_progress(move |f| {
            if f > 0.0 {
                seen.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let e = denoise_zs_n2n(img.view(), &q, &ctl).unwrap_err();
        assert!(e.to_string().contains(under), "{e}");
        assert!(!trained.load(std::sync::atomic::Ordering::Relaxed), "refused after training");
        std::fs::remove_dir_all(&dir).unwrap();
        // Asking to save when nothing is trained is refused rather than silently ignored.
        let flat = Array3::<f32>::from_elem((1, 24, 24), 3.0);
        for (case, why) in [
            (ZsN2nParams { steps: 0, ..q.clone() }, "steps = 0"),
            (ZsN2nParams { weights: FilePath("w.json"), ..q.clone() }, "weights are applied"),
        ] {
            let e = denoise_zs_n2n(img.view(), &case, &Control::new()).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        let e = denoise_zs_n2n(flat.view(), &q, &Control::new()).unwrap_err();
        assert!(e.to_string().contains("constant"), "{e}");
    }
}
