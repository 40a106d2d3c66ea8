//! TLS 1.0–1.2 CBC suites opened with a key log, against tshark: curl
//! against servers offering only CBC suites (`samples/curl-tls-cbc.*`,
//! bench/make-tls-samples.sh cbc), with and without encrypt_then_mac.

use serde_json::Value;

use crate::tls::{analyze_opened, decrypted_bytes, sample, syncscope, tls_facts, tshark_tls_bytes};

/// Every record opens; the application bytes per connection and direction
/// are tshark's; every GET and POST is paired with its answer.
#[test]
fn cbc_suites_of_tls10_to_12_decrypt_like_tshark() {
    let (cap, keys) = (sample("curl-tls-cbc.pcapng"), sample("curl-tls-cbc.keys"));
    let r = analyze_opened(&cap, &keys);
    assert_eq!(r["tls"]["unsupported_suite"], 0);
    let suites = tls_facts(&r, "cipher");
    assert_eq!(
        suites,
        [
            "TLS 1.2 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
            "TLS 1.2 TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
            "TLS 1.2 TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
            "TLS 1.2 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
            "TLS 1.1 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
            "TLS 1.0 TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        ]
    );
    let ours = decrypted_bytes(&r);
    assert!(ours.values().all(|b| b[0] > 0 && b[1] > 0), "{ours:?}");
    // Connections 0, 1 and 5 went to the encrypt-then-MAC server (8461),
    // 2 to 4 to the MAC-then-encrypt one (8462): tshark's per port.
    let mut theirs = tshark_tls_bytes(&cap, &keys, 6, "8461");
    let mte = tshark_tls_bytes(&cap, &keys, 6, "8462");
    for s in 2..5 {
        theirs.insert(s, mte[&s]);
    }
    assert_eq!(ours, theirs);
    // Each connection's GET and POST, answered.
    let o = syncscope(&["frames", &cap, "--keylog", &keys, "--format", "json"]);
    let recs: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let exchanges: Vec<(u64, String, Value)> = recs
        .iter()
        .filter(|x| x["layer"] == "web")
        .map(|x| {
            (
                x["conn"].as_u64().unwrap(),
                x["endpoint"].as_str().unwrap().to_owned(),
                x["status"].clone(),
            )
        })
        .collect();
    assert_eq!(exchanges.len(), 12, "{exchanges:?}");
    for c in 0..6 {
        let mine: Vec<_> = exchanges.iter().filter(|e| e.0 == c).collect();
        assert_eq!(mine.len(), 2, "conn {c}");
        assert_eq!(
            (mine[0].1.as_str(), mine[1].1.as_str()),
            ("webwxinit", "webwxsync")
        );
        assert!(mine.iter().all(|e| e.2 == 200), "{mine:?}");
    }
}
