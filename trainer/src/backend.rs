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

/// Work generic over the training backend, run by [`dispatch`] on the one the user chose.
pub trait OnBackend {
    type Output;
    /// Runs on backend `B`'s `device`; `name` describes it for reports (`burn (cuda)`).
    fn run<B: burn::tensor::backend::AutodiffBackend>(
        self,
        device: &B::Device,
        name: &str,
    ) -> anyhow::Result<Self::Output>;
}

/// Runs `work` on the backend of `choice`.
pub fn dispatch<W: OnBackend>(choice: DeviceChoice, work: W) -> anyhow::Result<W::Output> {
    match choice {
        DeviceChoice::Cpu => work.run::<Cpu>(&cpu_device(), "burn (flex, cpu)"),
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => {
            work.run::<Cuda>(&burn::backend::cuda::CudaDevice::default(), "burn (cuda)")
        }
        #[cfg(not(feature = "cuda"))]
        DeviceChoice::Cuda => anyhow::bail!(
            "this trainer was built without CUDA support: rebuild with `--features cuda`"
        ),
    }
}
