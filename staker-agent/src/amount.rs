//! SUI amounts on the command line: exact decimal SUI or integer MIST, never floats.

use daas_chain_types::consts::MIST_PER_SUI;

/// `1`, `1.5`, `0.000000001`, `2SUI`, `2 sui` → SUI; `1500mist` → MIST. Zero is refused.
pub(crate) fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let mist = if let Some(n) = t.strip_suffix("mist") {
        n.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?}: MIST must be a whole number"))?
    } else {
        parse_sui(t.strip_suffix("sui").unwrap_or(&t).trim()).ok_or_else(|| {
            format!("{s:?}: expected SUI like 1.5 (at most 9 decimals) or MIST like 1500000000mist")
        })?
    };
    if mist == 0 {
        return Err("the amount must be positive".into());
    }
    Ok(mist)
}

fn parse_sui(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 9
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_mist: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    whole.checked_mul(MIST_PER_SUI)?.checked_add(frac_mist)
}

/// MIST as SUI with up to 9 decimals, trailing zeros trimmed (`1.5 SUI`).
pub(crate) fn format(mist: u64) -> String {
    let whole = mist / MIST_PER_SUI;
    let frac = mist % MIST_PER_SUI;
    if frac == 0 {
        format!("{whole} SUI")
    } else {
        let f = format!("{frac:09}");
        format!("{whole}.{} SUI", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sui_and_mist_exactly() {
        assert_eq!(parse("1"), Ok(1_000_000_000));
        assert_eq!(parse("1.5"), Ok(1_500_000_000));
        assert_eq!(parse("2SUI"), Ok(2_000_000_000));
        assert_eq!(parse(" 0.000000001 sui"), Ok(1));
        assert_eq!(parse(".5"), Ok(500_000_000));
        assert_eq!(parse("1500mist"), Ok(1500));
        assert_eq!(parse("18446744073mist"), Ok(18_446_744_073));
    }

    #[test]
    fn refuses_bad_amounts() {
        for bad in [
            "",
            "0",
            "0mist",
            "-1",
            "1.0000000001",
            "1e9",
            "abc",
            "1.5mist",
            "1,5",
            ".",
            "99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_without_float_noise() {
        assert_eq!(format(1_500_000_000), "1.5 SUI");
        assert_eq!(format(1), "0.000000001 SUI");
        assert_eq!(format(10_000_000_000), "10 SUI");
        assert_eq!(format(0), "0 SUI");
    }
}
