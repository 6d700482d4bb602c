//! When a schedule is due: its trigger (a cron expression in a time zone, or an interval), and
//! which due times to fire now given the last one fired, the catch-up policy and how many more
//! runs of it may start. Pure functions of their arguments; the scheduler does the firing.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};

/// Most due times fired for one schedule in one pass (a long catch-up goes on at the next).
pub const MOST_PER_PASS: usize = 100;

/// When a schedule is due.
#[derive(Debug, Clone)]
pub enum Trigger {
    Cron {
        cron: Box<croner::Cron>,
        tz: Tz,
    },
    /// Every so many milliseconds from its anchor.
    Every(i64),
}

/// A trigger with the window it fires in.
#[derive(Debug, Clone)]
pub struct Timing {
    pub trigger: Trigger,
    /// An interval counts from here (the start time, else the time it was made); nothing
    /// fires before it.
    pub anchor: i64,
    pub end_at: Option<i64>,
    /// Due times before it are passed over.
    pub not_before: Option<i64>,
}

/// Parses a trigger: a cron expression (five fields, or six with seconds first; `?` as `*`;
/// `@daily` and the like) in a time zone of the IANA database (UTC if none), or an interval.
pub fn trigger(
    cron: Option<&str>,
    timezone: Option<&str>,
    interval_s: Option<i64>,
) -> Result<Trigger, String> {
    match (cron, interval_s) {
        (Some(_), Some(_)) => Err("give a cron expression or an interval, not both".into()),
        (None, None) => Err("give a cron expression or an interval".into()),
        (None, Some(s)) => {
            if timezone.is_some() {
                return Err("a time zone applies only to a cron expression".into());
            }
            if !(1..=366 * 24 * 3600).contains(&s) {
                return Err(format!(
                    "the interval must be 1 second to 366 days, not {s} seconds"
                ));
            }
            Ok(Trigger::Every(s * 1000))
        }
        (Some(c), None) => {
            if c.len() > 256 {
                return Err("the cron expression is over 256 characters".into());
            }
            let parsed = CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(c.trim())
                .map_err(|e| format!("cron expression `{c}`: {e}"))?;
            let tz = match timezone {
                None | Some("") => Tz::UTC,
                Some(z) => z.parse::<Tz>().map_err(|_| {
                    format!("unknown time zone `{z}`: give an IANA name such as Europe/Berlin")
                })?,
            };
            Ok(Trigger::Cron {
                cron: Box::new(parsed),
                tz,
            })
        }
    }
}

fn at(ms: i64, tz: Tz) -> Option<DateTime<Tz>> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| tz.from_utc_datetime(&t.naive_utc()))
}

impl Timing {
    /// Its first due time strictly after `after` (milliseconds), if it has one.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        let next = match &self.trigger {
            Trigger::Every(iv) => {
                let k = if after < self.anchor {
                    1
                } else {
                    (after - self.anchor) / iv + 1
                };
                self.anchor.checked_add(k.checked_mul(*iv)?)?
            }
            Trigger::Cron { cron, tz } => {
                let from = at(after.max(self.anchor - 1), *tz)?;
                cron.find_next_occurrence(&from, false)
                    .ok()?
                    .timestamp_millis()
            }
        };
        match self.end_at {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// Its latest due time at or before `now` and strictly after `after`, if any.
    pub fn latest(&self, after: i64, now: i64) -> Option<i64> {
        let now = self.end_at.map_or(now, |e| e.min(now));
        let t = match &self.trigger {
            Trigger::Every(iv) => {
                let k = (now - self.anchor).div_euclid(*iv);
                if k < 1 {
                    return None;
                }
                self.anchor + k * iv
            }
            Trigger::Cron { cron, tz } => {
                let t = cron
                    .find_previous_occurrence(&at(now, *tz)?, true)
                    .ok()?
                    .timestamp_millis();
                if t < self.anchor {
                    return None;
                }
                t
            }
        };
        (t > after).then_some(t)
    }

    /// The due times to fire at `now`, in order: after `last` (the last fired), at most
    /// `slots` of them; with `catchup` every one missed (oldest first), else only the latest.
    pub fn due(&self, last: Option<i64>, now: i64, catchup: bool, slots: u32) -> Vec<i64> {
        let after = last
            .unwrap_or(self.anchor - 1)
            .max(self.not_before.map_or(i64::MIN, |t| t - 1));
        let most = (slots as usize).min(MOST_PER_PASS);
        if most == 0 {
            return Vec::new();
        }
        if !catchup {
            return self.latest(after, now).into_iter().collect();
        }
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < most {
            match self.next_after(t) {
                Some(n) if n <= now => {
                    out.push(n);
                    t = n;
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    /// 2026-12-01T00:00:00Z.
    const T0: i64 = 1_796_083_200_000;

    fn cron(expr: &str, tz: Option<&str>, anchor: i64) -> Timing {
        Timing {
            trigger: trigger(Some(expr), tz, None).unwrap(),
            anchor,
            end_at: None,
            not_before: None,
        }
    }

    #[test]
    fn an_interval_fires_from_its_anchor_on() {
        let t = Timing {
            trigger: trigger(None, None, Some(60)).unwrap(),
            anchor: T0,
            end_at: Some(T0 + 3 * MIN),
            not_before: None,
        };
        assert_eq!(t.next_after(T0 - 5), Some(T0 + MIN));
        assert_eq!(t.next_after(T0 + MIN), Some(T0 + 2 * MIN));
        assert_eq!(t.next_after(T0 + 3 * MIN), None, "past its end");
        assert_eq!(t.latest(T0 - 1, T0 + 150_000), Some(T0 + 2 * MIN));
        assert_eq!(t.latest(T0 + 2 * MIN, T0 + 150_000), None);
    }

    #[test]
    fn catch_up_fires_every_missed_time_and_no_catch_up_only_the_latest() {
        let t = cron("0 * * * *", None, T0);
        let now = T0 + 5 * HOUR + 30 * MIN;
        assert_eq!(
            t.due(Some(T0 + HOUR), now, true, 10),
            vec![T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]
        );
        assert_eq!(t.due(Some(T0 + HOUR), now, false, 10), vec![T0 + 5 * HOUR]);
        // At its concurrency limit nothing fires; with one slot, the oldest missed.
        assert!(t.due(Some(T0 + HOUR), now, true, 0).is_empty());
        assert_eq!(t.due(Some(T0 + HOUR), now, true, 1), vec![T0 + 2 * HOUR]);
        // Nothing is due twice.
        assert!(t.due(Some(T0 + 5 * HOUR), now, true, 10).is_empty());
        assert!(t.due(Some(T0 + 5 * HOUR), now, false, 10).is_empty());
    }

    #[test]
    fn due_times_while_paused_are_passed_over() {
        let mut t = cron("0 * * * *", None, T0);
        t.not_before = Some(T0 + 3 * HOUR + MIN);
        assert_eq!(
            t.due(Some(T0 + HOUR), T0 + 5 * HOUR, true, 10),
            vec![T0 + 4 * HOUR, T0 + 5 * HOUR]
        );
    }

    #[test]
    fn a_long_catch_up_is_bounded_per_pass() {
        let t = cron("* * * * * *", None, T0);
        assert_eq!(t.due(None, T0 + HOUR, true, u32::MAX).len(), MOST_PER_PASS);
    }

    #[test]
    fn cron_runs_in_its_time_zone_across_daylight_saving() {
        // 09:00 in Berlin: 08:00 UTC in winter, 07:00 UTC in summer.
        let t = cron("0 9 * * *", Some("Europe/Berlin"), T0);
        assert_eq!(t.next_after(T0), Some(T0 + 8 * HOUR));
        // 2027-07-01T00:00:00Z.
        let july = 1_814_400_000_000;
        assert_eq!(t.next_after(july), Some(july + 7 * HOUR));
    }

    #[test]
    fn kubeflow_six_field_cron_with_seconds_and_question_mark() {
        let t = cron("30 0 * * * ?", None, T0);
        assert_eq!(t.next_after(T0), Some(T0 + 30_000));
        assert_eq!(t.next_after(T0 + 30_000), Some(T0 + HOUR + 30_000));
    }

    #[test]
    fn bad_triggers_say_what_is_wrong() {
        let e = |c: Option<&str>, z: Option<&str>, i: Option<i64>| trigger(c, z, i).unwrap_err();
        assert!(e(Some("61 * * * *"), None, None).contains("61 * * * *"));
        assert!(e(Some("0 * * * *"), Some("Mars/Olympus"), None).contains("Mars/Olympus"));
        assert!(e(None, None, Some(0)).contains("interval"));
        assert!(e(Some("* * * * *"), None, Some(5)).contains("not both"));
        assert!(e(None, None, None).contains("cron expression or an interval"));
    }
}
