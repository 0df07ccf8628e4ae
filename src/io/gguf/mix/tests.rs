use super::*;

#[test]
fn layer_parses_like_sscanf() {
    assert_eq!(parse_layer("blk.0.attn_q.weight"), Some(0));
    assert_eq!(parse_layer("blk.12.ffn_up.weight"), Some(12));
    assert_eq!(parse_layer("blk.x.weight"), None);
    assert_eq!(parse_layer("output.weight"), None);
    assert_eq!(parse_layer("blk.-3.a"), Some(-3));
    assert_eq!(parse_layer("blk. 7.a"), Some(7));
    assert_eq!(parse_layer("blk.99999999999999999999.a"), Some(i64::from(i32::MAX)));
}

#[test]
fn categories() {
    use Category::*;
    for (name, cat) in [
        ("blk.0.attn_v.weight", AttnV),
        ("blk.0.attn_qkv.weight", AttnQkv),
        ("blk.0.attn_kv_b.weight", AttnKvB),
        ("blk.0.attn_k.weight", AttnK),
        ("blk.0.attn_q.weight", AttnQ),
        ("blk.0.attn_output.weight", AttnOutput),
        ("blk.0.ffn_up_exps.weight", FfnUp),
        ("blk.0.ffn_gate_up_exps.weight", FfnGate),
        ("blk.0.ffn_gate.weight", FfnGate),
        ("blk.0.ffn_down_shexp.weight", FfnDown),
        ("token_embd.weight", TokenEmbd),
        ("per_layer_token_embd.weight", TokenEmbd),
        ("output.weight", Output),
        ("blk.0.attn_q_a.weight", Other),
        ("output_norm.weight", Other),
    ] {
        assert_eq!(Category::of(name), cat, "{name}");
    }
}

#[test]
fn use_more_bits_of_32_layers() {
    let picked: Vec<i64> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
    assert_eq!(picked, [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
}

#[test]
fn names_round_trip() {
    for t in Target::ALL {
        assert_eq!(Target::from_name(t.name()), Some(t));
        assert_eq!(Target::from_name(&t.name().to_lowercase()), Some(t));
    }
    assert_eq!(Target::from_name("q3_k"), Some(Target::Q3_K_M));
    assert_eq!(Target::from_name("Q2_K_S"), None);
}
