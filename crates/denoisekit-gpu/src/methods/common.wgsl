// Shared helpers, prepended to every DenoiseKit kernel at pipeline creation.
//
// border_index mirrors denoisekit_core::border::BorderMode::index exactly (the modes are
// numbered in the order of BorderMode::ALL); -1 means "zero padding".

const BORDER_REPLICATE: u32 = 0u;
const BORDER_SYMMETRIC: u32 = 1u;
const BORDER_REFLECT: u32 = 2u;
const BORDER_PERIODIC: u32 = 3u;
const BORDER_ZERO: u32 = 4u;

fn rem_euclid(a: i32, n: i32) -> i32 {
    let r = a % n;
    return select(r, r + n, r < 0);
}

fn border_index(i: i32, n: i32, mode: u32) -> i32 {
    if (i >= 0 && i < n) {
        return i;
    }
    switch mode {
        case BORDER_REPLICATE: {
            return clamp(i, 0, n - 1);
        }
        case BORDER_SYMMETRIC: {
            let p = rem_euclid(i, 2 * n);
            return select(2 * n - 1 - p, p, p < n);
        }
        case BORDER_REFLECT: {
            if (n == 1) {
                return 0;
            }
            let p = rem_euclid(i, 2 * n - 2);
            return select(2 * n - 2 - p, p, p < n);
        }
        case BORDER_PERIODIC: {
            return rem_euclid(i, n);
        }
        default: {
            return -1;
        }
    }
}
