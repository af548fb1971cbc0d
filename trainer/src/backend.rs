//! Which Burn backend trains: the `flex` CPU backend always, CUDA with the `cuda` feature.

use std::str::FromStr;

/// The Burn CPU backend with autodiff.
pub type Cpu = burn::backend::Autodiff<burn::backend::Flex>;
/// The CPU backend's device.
pub fn cpu_device() -> burn::backend::flex::FlexDevice {
    burn::backend::flex::FlexDevice
}

/// The CUDA backend with autodiff.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Autodiff<burn::backend::Cuda>;

/// Where to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            other => Err(format!("unknown device {other:?}: expected cpu or cuda")),
        }
    }
}
