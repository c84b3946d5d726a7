//! Each optimised kernel against a slow, obviously correct per-pixel implementation
//! (f64, libm `exp`, explicit border clamping), on small seeded 2D and 3D inputs.

use denoisekit_core::phantom::Rng;
use denoisekit_core::{
    BilateralParams, BorderMode, Control, GaussianParams, NlMeansParams, Volume, denoise_bilateral,
    denoise_gaussian, denoise_nl_means,
};

fn random(shape: (usize, usize, usize), seed: u64) -> Volume {
    let mut r = Rng::new(seed);
    Volume::from_shape_fn(shape, |_| (r.uniform() * 10.0) as f32)
}

/// The replicate-border pixel value at a possibly out-of-range position.
fn at(v: &Volume, z: isize, y: isize, x: isize) -> f64 {
    let (d, h, w) = v.dim();
    let c = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    v[(c(z, d), c(y, h), c(x, w))] as f64
}

fn assert_close(fast: &Volume, slow: &Volume, tol: f64, what: &str) {
    let worst = fast
        .iter()
        .zip(slow.iter())
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max);
    assert!(worst <= tol, "{what}: max |fast - naive| = {worst} > {tol}");
}

#[test]
fn gaussian_matches_naive_3d_sum() {
    let v = random((5, 9, 12), 1);
    let p = GaussianParams {
        sigma: 0.8,
        sigma_z: 0.6,
        border: BorderMode::Replicate,
    };
    let fast = denoise_gaussian(v.view(), &p, &Control::new()).unwrap();
    let kern = |s: f64| {
        let r = (4.0 * s).ceil() as isize;
        let k: Vec<f64> = (-r..=r)
            .map(|i| (-(i * i) as f64 / (2.0 * s * s)).exp())
            .collect();
        let t: f64 = k.iter().sum();
        (r, k.into_iter().map(|x| x / t).collect::<Vec<_>>())
    };
    let (r, k) = kern(0.8);
    let (rz, kz) = kern(0.6);
    let slow = Volume::from_shape_fn(v.dim(), |(z, y, x)| {
        let mut acc = 0.0;
        for a in -rz..=rz {
            for b in -r..=r {
                for c in -r..=r {
                    acc += kz[(a + rz) as usize]
                        * k[(b + r) as usize]
                        * k[(c + r) as usize]
                        * at(&v, z as isize + a, y as isize + b, x as isize + c);
                }
            }
        }
        acc as f32
    });
    assert_close(&fast, &slow, 1e-5, "gaussian");
}

#[test]
fn gaussian_matches_naive_for_every_border_and_band_seams() {
    // 70 rows cross the 64-row band seam, 37 columns exercise the 16-wide blocks and the
    // scalar tail; sigma 4 on a 5-row image makes the kernel wider than the image.
    for (shape, sigma) in [((1, 70, 37), 1.3), ((1, 5, 9), 4.0)] {
        let v = random(shape, 4);
        for border in BorderMode::ALL {
            let p = GaussianParams {
                sigma,
                sigma_z: 0.0,
                border,
            };
            let fast = denoise_gaussian(v.view(), &p, &Control::new()).unwrap();
            let r = (4.0 * sigma).ceil() as isize;
            let k: Vec<f64> = (-r..=r)
                .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
                .collect();
            let t: f64 = k.iter().sum();
            let (_, h, w) = shape;
            let px = |y: isize, x: isize| match (border.index(y, h), border.index(x, w)) {
                (Some(y), Some(x)) => v[(0, y, x)] as f64,
                _ => 0.0,
            };
            let slow = Volume::from_shape_fn(shape, |(_, y, x)| {
                let mut acc = 0.0;
                for a in -r..=r {
                    for b in -r..=r {
                        acc += k[(a + r) as usize]
                            * k[(b + r) as usize]
                            * px(y as isize + a, x as isize + b);
                    }
                }
                (acc / (t * t)) as f32
            });
            assert_close(
                &fast,
                &slow,
                1e-5,
                &format!("gaussian {shape:?} {border:?}"),
            );
        }
    }
}

#[test]
fn bilateral_matches_naive_2d_and_3d() {
    for (shape, sz) in [((1, 13, 17), 0.0), ((4, 9, 10), 0.8)] {
        let v = random(shape, 2);
        let p = BilateralParams {
            sigma_spatial: 1.3,
            sigma_range: 2.5,
            radius: 0,
            sigma_spatial_z: sz,
        };
        let fast = denoise_bilateral(v.view(), &p, &Control::new()).unwrap();
        let r = (3.0f64 * 1.3).ceil() as isize;
        let rz = if shape.0 > 1 {
            (3.0f64 * sz).ceil() as isize
        } else {
            0
        };
        let slow = Volume::from_shape_fn(v.dim(), |(z, y, x)| {
            let c = v[(z, y, x)] as f64;
            let (mut num, mut den) = (0.0, 0.0);
            for a in -rz..=rz {
                for b in -r..=r {
                    for e in -r..=r {
                        let q = at(&v, z as isize + a, y as isize + b, x as isize + e);
                        let mut lw = -((b * b + e * e) as f64) / (2.0 * 1.3 * 1.3)
                            - (q - c).powi(2) / (2.0 * 2.5 * 2.5);
                        if rz > 0 {
                            lw -= (a * a) as f64 / (2.0 * sz * sz);
                        }
                        num += lw.exp() * q;
                        den += lw.exp();
                    }
                }
            }
            (num / den) as f32
        });
        assert_close(&fast, &slow, 2e-4, "bilateral");
    }
}

#[test]
fn nl_means_matches_naive_2d_and_3d() {
    let cases = [((1, 40, 23), 2, 3, 0, 0), ((5, 12, 14), 1, 2, 1, 1)];
    for (shape, pr, sr, prz, srz) in cases {
        let v = random(shape, 3);
        let (h, sigma) = (2.0, 1.5);
        let p = NlMeansParams {
            h,
            sigma,
            patch_radius: pr,
            search_radius: sr,
            patch_radius_z: prz,
            search_radius_z: srz,
        };
        let fast = denoise_nl_means(v.view(), &p, &Control::new()).unwrap();
        let (pr, sr, prz, srz) = (pr as isize, sr as isize, prz as isize, srz as isize);
        let n = ((2 * pr + 1) * (2 * pr + 1) * (2 * prz + 1)) as f64;
        let slow = Volume::from_shape_fn(v.dim(), |(z, y, x)| {
            let (z, y, x) = (z as isize, y as isize, x as isize);
            let (mut num, mut den) = (0.0, 0.0);
            for sz in -srz..=srz {
                for sy in -sr..=sr {
                    for sx in -sr..=sr {
                        let mut d2 = 0.0;
                        for a in -prz..=prz {
                            for b in -pr..=pr {
                                for c in -pr..=pr {
                                    let p1 = at(&v, z + a, y + b, x + c);
                                    let p2 = at(&v, z + sz + a, y + sy + b, x + sx + c);
                                    d2 += (p1 - p2).powi(2);
                                }
                            }
                        }
                        let wt = (-((d2 / n - 2.0 * sigma * sigma).max(0.0)) / (h * h)).exp();
                        num += wt * at(&v, z + sz, y + sy, x + sx);
                        den += wt;
                    }
                }
            }
            (num / den) as f32
        });
        assert_close(&fast, &slow, 2e-3, "nl_means");
    }
}
