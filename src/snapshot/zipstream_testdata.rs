//! Deterministic test data of the kinds a snapshot holds, for the zip writer's tests: random
//! base64 tokens, Kubernetes-like JSON objects, PEM certificates, hex, random bytes, zeros.

/// xorshift64: the same bytes for the same seed, on every platform.
pub(super) struct Noise(u64);

impl Noise {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[(self.next() % choices.len() as u64) as usize]
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(super) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise::new(seed);
    (0..len).map(|_| (noise.next() >> 24) as u8).collect()
}

pub(super) fn random_base64(len: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise::new(seed);
    (0..len)
        .map(|_| BASE64[(noise.next() >> 40) as usize % 64])
        .collect()
}

pub(super) fn random_hex(len: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise::new(seed);
    (0..len)
        .map(|_| b"0123456789abcdef"[(noise.next() >> 40) as usize % 16])
        .collect()
}

/// PEM certificates: a header, 64-character lines of random base64, a footer.
pub(super) fn certificates(len: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise::new(seed);
    let mut out = Vec::with_capacity(len + 2048);
    while out.len() < len {
        out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for _ in 0..18 {
            let line = random_base64(64, noise.next());
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        out.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    out.truncate(len);
    out
}

/// Kubernetes-like objects as the API server stores them: JSON manifests with random uids,
/// names and env values, and a base64 payload of 64 to 1024 random bytes (as bench/gen-values.py
/// writes them).
pub(super) fn k8s_objects(len: usize, seed: u64) -> Vec<u8> {
    let mut noise = Noise::new(seed);
    let mut out = String::with_capacity(len + 4096);
    while out.len() < len {
        let app = noise.pick(&["api", "web", "worker", "cache", "ingress", "metrics", "db"]);
        let kind = noise.pick(&["Pod", "ConfigMap", "Secret", "Service", "Endpoints"]);
        let ns = noise.pick(&["default", "kube-system", "prod", "staging"]);
        let (uid, hash, rv) = (
            noise.next(),
            noise.next() % (1 << 36),
            noise.next() % 1_000_000,
        );
        let env: Vec<String> = (0..2 + noise.next() % 7)
            .map(|k| format!(r#"{{"name":"VAR_{k}","value":"{:x}"}}"#, noise.next()))
            .collect();
        let payload_len = 86 + (noise.next() % 1280) as usize;
        let payload = String::from_utf8(random_base64(payload_len, noise.next())).unwrap();
        out.push_str(&format!(
            r#"{{"apiVersion":"v1","kind":"{kind}","metadata":{{"name":"{app}-{uid:010x}","namespace":"{ns}","uid":"{uid:016x}","resourceVersion":"{rv}","labels":{{"app":"{app}","pod-template-hash":"{hash:x}","tier":"backend"}},"managedFields":[{{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","fieldsType":"FieldsV1","fieldsV1":{{"f:metadata":{{"f:labels":{{".":{{}},"f:app":{{}}}}}},"f:spec":{{"f:containers":{{}}}}}}}}]}},"spec":{{"containers":[{{"name":"{app}","image":"registry.example.com/{app}:v1.{}.{}","env":[{}],"resources":{{"requests":{{"cpu":"100m","memory":"128Mi"}}}}}}],"nodeName":"node-{}"}},"data":{{"payload":"{payload}"}}}}"#,
            noise.next() % 40,
            noise.next() % 10,
            env.join(","),
            noise.next() % 50
        ));
    }
    let mut bytes = out.into_bytes();
    bytes.truncate(len);
    bytes
}
