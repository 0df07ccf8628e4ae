//! Reading safetensors checkpoints, and `lowbit inspect`.

use safetensors::{Dtype, SafeTensors};

use crate::Result;
use lowbit::{Bf16, FloatFormat, Fp16};

/// One tensor of a checkpoint: its values as `f32` when it is a float tensor.
pub struct Tensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Tensor {
    /// The values as `f32` (F64, F32, F16, BF16), or `None` for other dtypes.
    pub fn values(&self) -> Option<Vec<f32>> {
        let d = &self.data;
        Some(match self.dtype {
            Dtype::F32 => d
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => d
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
                .collect(),
            Dtype::F16 => d
                .chunks_exact(2)
                .map(|b| Fp16::decode_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::BF16 => d
                .chunks_exact(2)
                .map(|b| Bf16::decode_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            _ => return None,
        })
    }
}

/// A file's `__metadata__`, sorted by key.
pub type Metadata = Vec<(String, String)>;

/// Every tensor of a safetensors file's bytes, in file order, and its metadata.
pub fn read(bytes: &[u8], what: &str) -> Result<(Vec<Tensor>, Metadata)> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("{what}: {e}"))?;
    let mut names: Vec<(usize, String)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (v.data().as_ptr() as usize, n))
        .collect();
    names.sort();
    let tensors = names
        .into_iter()
        .map(|(_, name)| {
            let v = st.tensor(&name).map_err(|e| format!("{what}: {name}: {e}"))?;
            Ok(Tensor {
                dtype: v.dtype(),
                shape: v.shape().to_vec(),
                data: v.data().to_vec(),
                name,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format!("{what}: {e}"))?;
    let mut metadata: Metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    metadata.sort();
    Ok((tensors, metadata))
}

/// `lowbit inspect FILE`.
pub fn inspect(args: &[String]) -> Result<()> {
    let [path] = args else {
        return Err(format!("inspect takes one file\n{}", crate::USAGE).into());
    };
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    if crate::gguf::is_gguf(&bytes) {
        return crate::gguf::inspect(&bytes, path);
    }
    let (tensors, metadata) = read(&bytes, path)?;
    for (k, v) in &metadata {
        println!("{k}: {v}");
    }
    println!(
        "{:<60} {:>8} {:>16} {:>12} {:>8}",
        "tensor", "dtype", "shape", "bytes", "bits/el"
    );
    let mut total = 0;
    for t in &tensors {
        let n: usize = t.shape.iter().product::<usize>().max(1);
        total += t.data.len();
        println!(
            "{:<60} {:>8} {:>16} {:>12} {:>8.3}",
            t.name,
            format!("{:?}", t.dtype),
            format!("{:?}", t.shape),
            t.data.len(),
            8.0 * t.data.len() as f64 / n as f64
        );
    }
    println!("{} tensors, {} bytes of tensor data", tensors.len(), total);
    Ok(())
}
