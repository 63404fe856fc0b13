use crate::*;

fn seal_vec(key: &DataKey, data: &[u8], opts: &SealOptions) -> (Vec<u8>, SealSummary) {
    let mut blob = Vec::new();
    let s = seal(key, data, &mut blob, opts).unwrap();
    (blob, s)
}

#[test]
fn smoke_round_trip() {
    for threads in [1, 2, 3] {
        for len in [0usize, 1, 63, 64, 65, 64 * 37 + 5] {
            let opts = SealOptions { chunk_size: 64, threads };
            let key = DataKey::generate();
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let (blob, s) = seal_vec(&key, &data, &opts);
            assert_eq!(s.ciphertext_len as usize, blob.len());
            assert_eq!(s.plaintext_len as usize, len);
            let mut out = Vec::new();
            let o = open(&key, &blob[..], &mut out, &opts).unwrap();
            assert_eq!(out, data);
            assert_eq!(o.commitment, s.commitment);
            assert_eq!(commitment_of(&blob[..]).unwrap(), s.commitment);
        }
    }
}
