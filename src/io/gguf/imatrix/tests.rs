use super::*;

fn legacy(entries: &[(&[u8], i32, &[f32])], trailer: Option<(i32, &[u8])>) -> Vec<u8> {
    let mut out = (entries.len() as i32).to_le_bytes().to_vec();
    for (name, ncall, values) in entries {
        out.extend((name.len() as i32).to_le_bytes());
        out.extend(*name);
        out.extend(ncall.to_le_bytes());
        out.extend((values.len() as i32).to_le_bytes());
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    if let Some((chunks, dataset)) = trailer {
        out.extend(chunks.to_le_bytes());
        out.extend((dataset.len() as i32).to_le_bytes());
        out.extend(dataset);
    }
    out
}

#[test]
fn legacy_divides_by_ncall_and_cuts_names_at_nul() {
    let bytes = legacy(
        &[
            (b"blk.0.attn_q.weight", 3, &[3.0, 1.0, 0.3]),
            (b"a\0junk", 0, &[5.0]),
            (b"neg", -2, &[7.0]),
        ],
        Some((42, b"wiki.train.raw")),
    );
    let m = Imatrix::read(&bytes).unwrap();
    assert_eq!(m.format(), Some(ImatrixFormat::Legacy));
    assert_eq!(m.get("blk.0.attn_q.weight").unwrap(), &[1.0, 1.0 / 3.0, 0.3 / 3.0]);
    assert_eq!(m.get("a").unwrap(), &[5.0]);
    assert_eq!(m.get("neg").unwrap(), &[7.0]);
    assert_eq!((m.chunk_count(), m.chunk_size()), (42, None));
    assert_eq!(m.datasets(), ["wiki.train.raw"]);
    // Without the trailer (the oldest files).
    let m = Imatrix::read(&legacy(&[(b"x", 2, &[4.0])], None)).unwrap();
    assert_eq!((m.get("x").unwrap(), m.chunk_count()), (&[2.0][..], 0));
}

#[test]
fn legacy_damage_is_an_error() {
    let good = legacy(&[(b"x", 2, &[4.0, 8.0])], Some((1, b"d")));
    for cut in 0..good.len() {
        // Every cut inside the entries or the trailer fails; a cut right after the entries
        // is a file without trailer.
        let r = Imatrix::read(&good[..cut]);
        assert_eq!(r.is_ok(), cut == 4 + 4 + 1 + 4 + 4 + 8, "cut {cut}");
    }
    assert!(Imatrix::read(&legacy(&[], None)).is_err());
    let mut huge = legacy(&[(b"x", 1, &[1.0])], None);
    huge[13..17].copy_from_slice(&i32::MAX.to_le_bytes()); // value count
    assert!(matches!(Imatrix::read(&huge), Err(Error::CountTooLarge { .. })));
    let nan = legacy(&[(b"x", 1, &[f32::NAN])], None);
    assert!(matches!(Imatrix::read(&nan), Err(Error::Imatrix { .. })));
}

fn gguf_imatrix(sums: &[f32], ne0: u64, counts: &[f32]) -> Gguf<'static> {
    let mut g = Gguf::new();
    g.metadata.insert("general.type", "imatrix");
    g.metadata.insert(DATASETS_KEY, vec!["a.txt", "b.txt"]);
    g.metadata.insert(CHUNK_COUNT_KEY, 7u32);
    g.metadata.insert(CHUNK_SIZE_KEY, 512u32);
    let b = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let n_mat = counts.len() as u64;
    g.tensors
        .push(Tensor::new("w.in_sum2", vec![ne0, n_mat], GgmlType::F32, b(sums)).unwrap());
    g.tensors
        .push(Tensor::new("w.counts", vec![1, n_mat], GgmlType::F32, b(counts)).unwrap());
    g
}

#[test]
fn gguf_divides_each_matrix_by_its_count() {
    let g = gguf_imatrix(&[2.0, 4.0, 6.0, 9.0, 9.0, 9.0, 1.0, 1.0, 1.0], 3, &[2.0, 0.0, 3.0]);
    let m = Imatrix::read(&g.to_bytes().unwrap()).unwrap();
    assert_eq!(m.format(), Some(ImatrixFormat::Gguf));
    let third = 1.0f32 / 3.0;
    assert_eq!(
        m.get("w").unwrap(),
        &[1.0, 2.0, 3.0, 1.0, 1.0, 1.0, third, third, third]
    );
    assert_eq!(m.n_matrices("w"), Some(3));
    assert_eq!(m.datasets(), ["a.txt", "b.txt"]);
    assert_eq!((m.chunk_count(), m.chunk_size()), (7, Some(512)));
    // Written back (importances, counts 1) and read again: the same values.
    let again = Imatrix::read(&m.to_bytes().unwrap()).unwrap();
    assert_eq!(again.get("w"), m.get("w"));
    assert_eq!(again.n_matrices("w"), Some(3));
}

#[test]
fn gguf_damage_is_an_error() {
    let mut g = gguf_imatrix(&[1.0, 2.0], 2, &[1.0]);
    g.tensors.pop();
    assert!(matches!(
        Imatrix::read(&g.to_bytes().unwrap()),
        Err(Error::Imatrix { .. })
    ));
    let mut g = gguf_imatrix(&[1.0, 2.0], 2, &[1.0]);
    g.metadata.remove(CHUNK_SIZE_KEY);
    assert!(matches!(
        Imatrix::read(&g.to_bytes().unwrap()),
        Err(Error::Imatrix { .. })
    ));
    let mut g = gguf_imatrix(&[1.0, 2.0], 2, &[1.0]);
    g.tensors[1] = Tensor::new("w.counts", vec![2], GgmlType::F32, vec![0u8; 8]).unwrap();
    assert!(matches!(
        Imatrix::read(&g.to_bytes().unwrap()),
        Err(Error::Imatrix { .. })
    ));
    // A count below one half rounds to 0 (no data: importance 1), as llama.cpp's `lround`.
    let g = gguf_imatrix(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, &[1e-45, 2.4, 2.5]);
    let m = Imatrix::read(&g.to_bytes().unwrap()).unwrap();
    assert_eq!(m.get("w").unwrap(), &[1.0, 1.0, 1.5, 2.0, 5.0 / 3.0, 2.0]);
    let g = gguf_imatrix(&[f32::INFINITY, 2.0], 2, &[1.0]);
    assert!(matches!(
        Imatrix::read(&g.to_bytes().unwrap()),
        Err(Error::Imatrix { .. })
    ));
    let mut g = gguf_imatrix(&[1.0, 2.0], 2, &[1.0]);
    g.tensors.clear();
    assert!(matches!(
        Imatrix::read(&g.to_bytes().unwrap()),
        Err(Error::Imatrix { .. })
    ));
}

#[test]
fn lookup_as_llama_quantize() {
    let mut m = Imatrix::new();
    m.insert("blk.0.ffn_up.weight", vec![1.0; 64]).unwrap();
    m.insert_experts("blk.0.ffn_up_exps.weight", vec![1.0; 128], 2).unwrap();
    m.insert("token_embd.weight", vec![1.0; 3]).unwrap();
    m.insert("blk.0.attn_k.weight", vec![1.0; 3]).unwrap();
    let info = |name: &str, dims: Vec<u64>| TensorInfo::new(name, dims, GgmlType::F16).unwrap();
    assert_eq!(
        m.for_tensor(&info("blk.0.ffn_up.weight", vec![64, 10]))
            .unwrap()
            .map(<[f32]>::len),
        Some(64)
    );
    assert_eq!(
        m.for_tensor(&info("blk.0.ffn_up_exps.weight", vec![64, 10, 2]))
            .unwrap()
            .map(<[f32]>::len),
        Some(128)
    );
    assert_eq!(m.for_tensor(&info("output.weight", vec![64, 10])).unwrap(), None);
    assert_eq!(m.for_tensor(&info("token_embd.weight", vec![64, 10])).unwrap(), None);
    assert!(m.for_tensor(&info("blk.0.attn_k.weight", vec![64, 10])).is_err());
    let mut n = m.clone();
    n.include(&["ffn_up"]);
    assert_eq!(
        n.names().collect::<Vec<_>>(),
        ["blk.0.ffn_up.weight", "blk.0.ffn_up_exps.weight"]
    );
    m.exclude(&["ffn", "token"]);
    assert_eq!(m.names().collect::<Vec<_>>(), ["blk.0.attn_k.weight"]);
    assert!(m.insert("x", vec![]).is_err());
    assert!(m.insert("x", vec![f32::INFINITY]).is_err());
    assert!(m.insert_experts("x", vec![1.0; 3], 2).is_err());
}

#[test]
fn an_empty_matrix_is_not_written() {
    // llama.cpp refuses files without entries, so lowbit does not write them; a GGUF file
    // whose tensors are none of an imatrix's reads as an empty matrix, as there.
    let m = Imatrix::new();
    assert!(m.to_bytes().is_err() && m.to_legacy_bytes().is_err());
    let mut g = gguf_imatrix(&[1.0, 2.0], 2, &[1.0]);
    g.tensors[0].info.name = "w.other".into();
    g.tensors[1].info.name = "w.more".into();
    let m = Imatrix::read(&g.to_bytes().unwrap()).unwrap();
    assert!(m.is_empty());
}
