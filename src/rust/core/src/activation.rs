//! Activations of dense layers, with the keras names. Each is one entry of the table
//! below holding all of it: the function, its derivative (as a factor, and applied in
//! place to a gradient), and the same function on burn tensors for the reference
//! engine. Adding an activation is one entry.

use burn::tensor::{activation as burn_act, backend::Backend, Tensor};

use crate::error::{Error, Result};

/// `1 / (1 + e^-x)` without overflow.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

macro_rules! activations {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $name:literal $(| $alias:literal)*,
        forward: |$a:ident| $forward:expr,
        grad: |$ga:ident, $gy:ident| $grad:expr,
        backward: |$bd:ident, $ba:ident, $by:ident| $backward:expr,
        burn: |$x:ident| $burn:expr;
    )*) => {
        /// Activation of a dense layer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Activation {
            $($(#[$doc])* $variant,)*
        }

        impl Activation {
            /// Every activation, in table order.
            pub const ALL: &'static [Activation] = &[$(Activation::$variant),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Activation::$variant => $name,)*
                }
            }

            /// Other names accepted for it (keras's spellings).
            pub fn aliases(self) -> &'static [&'static str] {
                match self {
                    $(Activation::$variant => &[$($alias),*],)*
                }
            }

            /// `act(a)`.
            #[inline(always)]
            pub fn apply(self, a: f32) -> f32 {
                match self {
                    $(Activation::$variant => {
                        let $a = a;
                        $forward
                    })*
                }
            }

            /// `act'(a)`, given also `y = act(a)`.
            #[inline(always)]
            #[allow(unused_variables)]
            pub fn grad(self, a: f32, y: f32) -> f32 {
                match self {
                    $(Activation::$variant => {
                        let ($ga, $gy) = (a, y);
                        $grad
                    })*
                }
            }

            /// `h = act(a)`, element by element.
            pub fn forward(self, a: &[f32], h: &mut [f32]) {
                match self {
                    $(Activation::$variant => h.iter_mut().zip(a).for_each(|(h, &$a)| *h = $forward),)*
                }
            }

            /// `dy = dy * act'(a)` in place (`h = act(a)`).
            #[allow(unused_variables)]
            pub fn backward(self, a: &[f32], h: &[f32], dy: &mut [f32]) {
                match self {
                    $(Activation::$variant => dy.iter_mut().zip(a.iter().zip(h)).for_each(|(d, (&$ba, &$by))| {
                        let $bd = *d;
                        *d = $backward
                    }),)*
                }
            }

            /// The activation on burn tensors (the reference engine).
            pub fn burn<B: Backend>(self, x: Tensor<B, 2>) -> Tensor<B, 2> {
                match self {
                    $(Activation::$variant => {
                        let $x = x;
                        $burn
                    })*
                }
            }

            /// The activation called `name` (or one of its aliases); the error names `field`.
            pub fn parse(name: &str, field: &'static str) -> Result<Activation> {
                match name {
                    $($name $(| $alias)* => Ok(Activation::$variant),)*
                    other => Err(Error::invalid(
                        field,
                        format!("has the unknown activation '{other}'; use one of {}",
                                Activation::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")),
                    )),
                }
            }
        }
    };
}

activations! {
    Relu = "relu",
        forward: |a| if a > 0.0 { a } else { 0.0 },
        grad: |a, y| if a > 0.0 { 1.0 } else { 0.0 },
        // a select, not a branch: the signs are random and the loop vectorises
        backward: |d, a, y| if a > 0.0 { d } else { 0.0 },
        burn: |x| burn_act::relu(x);
    Sigmoid = "sigmoid",
        forward: |a| sigmoid(a),
        grad: |a, y| y * (1.0 - y),
        backward: |d, a, y| d * (y * (1.0 - y)),
        burn: |x| burn_act::sigmoid(x);
    Tanh = "tanh",
        forward: |a| a.tanh(),
        grad: |a, y| 1.0 - y * y,
        backward: |d, a, y| d * (1.0 - y * y),
        burn: |x| burn_act::tanh(x);
    Elu = "elu",
        forward: |a| if a > 0.0 { a } else { a.exp() - 1.0 },
        grad: |a, y| if a > 0.0 { 1.0 } else { y + 1.0 },
        backward: |d, a, y| d * if a > 0.0 { 1.0 } else { y + 1.0 },
        burn: |x| burn_act::elu(x, 1.0);
    /// `ln(1 + e^a)` in the overflow-free form `max(a, 0) + ln(1 + e^-|a|)`.
    Softplus = "softplus",
        forward: |a| a.max(0.0) + (-a.abs()).exp().ln_1p(),
        grad: |a, y| sigmoid(a),
        backward: |d, a, y| d * sigmoid(a),
        burn: |x| burn_act::relu(x.clone()) + x.abs().neg().exp().log1p();
    Linear = "linear" | "identity",
        forward: |a| a,
        grad: |a, y| 1.0,
        backward: |d, a, y| d,
        burn: |x| x;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_finite_differences_and_burn_agrees() {
        let device = Default::default();
        let xs = [-3.0f32, -0.7, -0.1, 0.2, 0.9, 2.5];
        for &act in Activation::ALL {
            assert_eq!(Activation::parse(act.name(), "activation").unwrap(), act);
            for &alias in act.aliases() {
                assert_eq!(Activation::parse(alias, "activation").unwrap(), act);
            }
            let mut h = [0.0f32; 6];
            act.forward(&xs, &mut h);
            let mut d = [2.0f32; 6];
            act.backward(&xs, &h, &mut d);
            let t = burn::tensor::Tensor::<burn::backend::NdArray<f32>, 2>::from_data(
                burn::tensor::TensorData::new(xs.to_vec(), [2, 3]),
                &device,
            );
            let via_burn = act.burn(t).into_data().to_vec::<f32>().unwrap();
            for (i, &a) in xs.iter().enumerate() {
                let e = 1e-3f32;
                let fd = (act.apply(a + e) - act.apply(a - e)) / (2.0 * e);
                assert!((act.grad(a, h[i]) - fd).abs() < 2e-3, "{act:?} at {a}");
                assert_eq!(d[i], 2.0 * act.grad(a, h[i]), "{act:?} at {a}");
                assert_eq!(h[i], act.apply(a));
                assert!((via_burn[i] - h[i]).abs() < 1e-6, "{act:?} at {a}: burn {} vs {}", via_burn[i], h[i]);
            }
        }
        let e = Activation::parse("swish", "encoder_layers").unwrap_err().to_string();
        assert!(e.contains("'encoder_layers'") && e.contains("swish") && e.contains("softplus"), "{e}");
    }
}
