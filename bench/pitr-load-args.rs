//! The load generator's command line (`bench/pitr-load.rs` describes it) and the request mix:
//! pure parsing, with errors that name the argument and what was expected.

use std::time::Duration;

const USAGE: &str = "usage: etcd-snapshot-pitr-load <endpoint> <events> <value-bytes> <concurrency> \
[--rate N] [--duration SECS] [--mix put=P,delete=P,txn=P,lease=P] [--values repeat|hex] [--stats]";

/// The kinds of request, in the order `--mix` lists them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Put,
    Delete,
    Txn,
    Lease,
}
pub const KINDS: [(&str, Kind); 4] = [
    ("put", Kind::Put),
    ("delete", Kind::Delete),
    ("txn", Kind::Txn),
    ("lease", Kind::Lease),
];

/// Shares in percent, summing to 100, in `KINDS` order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix([u32; 4]);

impl Mix {
    const PUTS: Mix = Mix([100, 0, 0, 0]);

    /// `put=70,delete=10,txn=10,lease=10`; kinds left out get 0.
    fn parse(spec: &str) -> Result<Mix, String> {
        let mut shares = [0u32; 4];
        for part in spec.split(',') {
            let (name, share) = part
                .split_once('=')
                .ok_or_else(|| format!("--mix: {part:?} is not KIND=PERCENT"))?;
            let slot = KINDS
                .iter()
                .position(|(n, _)| *n == name.trim())
                .ok_or_else(|| {
                    format!("--mix: unknown kind {name:?}, expected put, delete, txn or lease")
                })?;
            shares[slot] = share
                .trim()
                .parse()
                .map_err(|_| format!("--mix: {part:?}: the share is not a whole percent"))?;
        }
        let total: u32 = shares.iter().sum();
        if total != 100 {
            return Err(format!("--mix: {spec:?} sums to {total}%, expected 100%"));
        }
        Ok(Mix(shares))
    }

    /// The kind of request number `i`: spread evenly, the same for every run.
    pub fn kind(&self, i: usize) -> Kind {
        // 37 is prime to 100, so every 100 consecutive requests visit each slot once.
        let mut slot = ((i * 37) % 100) as u32;
        for (share, (_, kind)) in self.0.iter().zip(KINDS) {
            if slot < *share {
                return kind;
            }
            slot -= share;
        }
        unreachable!("the shares sum to 100")
    }
}

#[derive(Debug, PartialEq)]
pub struct Options {
    pub endpoint: String,
    pub events: usize,
    pub value_bytes: usize,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    pub mix: Mix,
    pub hex_values: bool,
    pub stats: bool,
}

pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let [endpoint, events, value_bytes, concurrency, rest @ ..] = args else {
        return Err(USAGE.to_string());
    };
    let whole = |name: &str, s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("{name}: {s:?} is not a whole number"))
    };
    let mut options = Options {
        endpoint: endpoint.clone(),
        events: whole("events", events)?,
        value_bytes: whole("value-bytes", value_bytes)?,
        concurrency: whole("concurrency", concurrency)?.max(1),
        rate: None,
        duration: None,
        mix: Mix::PUTS,
        hex_values: false,
        stats: false,
    };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        if flag == "--stats" {
            options.stats = true;
            continue;
        }
        let value = rest
            .next()
            .ok_or_else(|| format!("{flag}: a value is expected after it"))?;
        let positive = |s: &str| match s.parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
            _ => Err(format!("{flag}: {s:?} is not a positive number")),
        };
        match flag.as_str() {
            "--rate" => options.rate = Some(positive(value)?),
            "--duration" => options.duration = Some(Duration::from_secs_f64(positive(value)?)),
            "--mix" => options.mix = Mix::parse(value)?,
            "--values" => {
                options.hex_values = match value.as_str() {
                    "repeat" => false,
                    "hex" => true,
                    _ => return Err(format!("--values: {value:?}, expected repeat or hex")),
                }
            }
            _ => return Err(format!("unknown option {flag:?}; {USAGE}")),
        }
    }
    if options.events == 0 && options.duration.is_none() {
        return Err("events 0 (no limit) needs --duration".to_string());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_old_argv_still_means_puts_as_fast_as_possible() {
        let o = parse_args(&args("http://e 300 1024 8")).unwrap();
        assert_eq!((o.events, o.value_bytes, o.concurrency), (300, 1024, 8));
        assert_eq!(
            (o.rate, o.duration, o.mix, o.stats),
            (None, None, Mix::PUTS, false)
        );
    }

    #[test]
    fn options_are_parsed_and_bad_ones_name_the_option() {
        let o = parse_args(&args(
            "http://e 0 1024 8 --rate 1000 --duration 30 --mix put=70,txn=30 --stats",
        ))
        .unwrap();
        assert_eq!(o.rate, Some(1000.0));
        assert_eq!(o.duration, Some(Duration::from_secs(30)));
        assert_eq!(o.mix, Mix([70, 0, 30, 0]));
        assert!(o.stats);
        let err = |s: &str| parse_args(&args(s)).unwrap_err();
        assert!(err("http://e 0 1024 8").contains("needs --duration"));
        assert!(err("http://e 10 1024 8 --rate -1").contains("--rate: \"-1\" is not a positive"));
        assert!(err("http://e 10 1024 8 --mix put=50").contains("sums to 50%, expected 100%"));
        assert!(err("http://e 10 1024 8 --mix put=90,watch=10").contains("unknown kind \"watch\""));
        assert!(err("http://e 10 1024 8 --rate").contains("--rate: a value is expected"));
        assert!(err("http://e ten 1024 8").contains("events: \"ten\" is not a whole number"));
    }

    #[test]
    fn every_hundred_requests_follow_the_mix_exactly() {
        let mix = Mix::parse("put=55,delete=15,txn=20,lease=10").unwrap();
        for offset in [0, 100, 12_300] {
            let mut counts = [0; 4];
            for i in offset..offset + 100 {
                counts[KINDS.iter().position(|(_, k)| *k == mix.kind(i)).unwrap()] += 1;
            }
            assert_eq!(counts, [55, 15, 20, 10]);
        }
    }
}
