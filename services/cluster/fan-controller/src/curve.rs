//! The fan curve: steps of (temperature, PWM), and the hysteresis that keeps a fan from
//! hunting between two steps when the temperature hovers at a threshold.
//!
//! Levels: 0 is idle (below the first step, `idle_pwm`), level i is step i (1-based). The fan
//! goes up as soon as the temperature reaches a higher step's threshold; it comes down from
//! level i only once the temperature is `hysteresis` degrees below step i's threshold, one step
//! at a time while that holds.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub temp: f64,
    pub pwm: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub steps: Vec<Step>, // temperatures strictly increasing, PWM never decreasing
    pub idle_pwm: u8,
    pub hysteresis: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    Keep,  // the curve says this level
    Hold,  // the curve alone says lower; hysteresis keeps this level
    Start, // no known level before (first reading, PWM not one of the curve's)
}

impl Action {
    pub fn word(self) -> &'static str {
        match self {
            Action::Up => "up",
            Action::Down => "down",
            Action::Keep => "keep",
            Action::Hold => "hold",
            Action::Start => "start",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub temp: f64,
    pub level: usize,
    pub target: usize, // what the curve says without hysteresis
    pub pwm: u8,
    pub action: Action,
}

impl Curve {
    pub fn pwm(&self, level: usize) -> u8 {
        if level == 0 {
            self.idle_pwm
        } else {
            self.steps[level - 1].pwm
        }
    }

    /// The threshold of `level` (None for idle).
    pub fn threshold(&self, level: usize) -> Option<f64> {
        level.checked_sub(1).map(|i| self.steps[i].temp)
    }

    /// The highest level whose threshold `temp` reaches.
    pub fn target(&self, temp: f64) -> usize {
        self.steps.iter().take_while(|s| temp >= s.temp).count()
    }

    /// The level a PWM value read back from the device stands for: the highest level with
    /// exactly that value; None for a value the curve never writes (the BIOS's, say).
    pub fn level_of_pwm(&self, pwm: u8) -> Option<usize> {
        (0..=self.steps.len()).rev().find(|&level| self.pwm(level) == pwm)
    }

    /// What to do at `temp`, the fan being at `current` (None: unknown).
    pub fn decide(&self, current: Option<usize>, temp: f64) -> Decision {
        let target = self.target(temp);
        let (level, action) = match current {
            None => (target, Action::Start),
            Some(current) if target > current => (target, Action::Up),
            Some(current) if target == current => (current, Action::Keep),
            Some(current) => {
                let mut level = current;
                while level > target && temp < self.steps[level - 1].temp - self.hysteresis {
                    level -= 1;
                }
                (level, if level < current { Action::Down } else { Action::Hold })
            }
        };
        Decision { temp, level, target, pwm: self.pwm(level), action }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve() -> Curve {
        Curve {
            steps: vec![Step { temp: 40.0, pwm: 80 }, Step { temp: 60.0, pwm: 160 }, Step { temp: 75.0, pwm: 255 }],
            idle_pwm: 30,
            hysteresis: 5.0,
        }
    }

    #[test]
    fn targets_by_threshold() {
        let c = curve();
        assert_eq!([20.0, 40.0, 59.9, 60.0, 80.0].map(|t| c.target(t)), [0, 1, 1, 2, 3]);
        assert_eq!([0, 1, 2, 3].map(|l| c.pwm(l)), [30, 80, 160, 255]);
    }

    #[test]
    fn up_at_once_down_only_past_the_hysteresis() {
        let c = curve();
        let mut level = None;
        let mut seen = Vec::new();
        for temp in [30.0, 65.0, 58.0, 55.0, 54.9, 76.0, 71.0, 69.9, 30.0] {
            let d = c.decide(level, temp);
            level = Some(d.level);
            seen.push((d.pwm, d.action));
        }
        use Action::*;
        assert_eq!(seen, [
            (30, Start), (160, Up), (160, Hold), (160, Hold), (80, Down), (255, Up), (255, Hold), (160, Down),
            (30, Down), // from 160 to idle in one reading: 30 is past every threshold's hysteresis
        ]);
    }

    #[test]
    fn down_stops_at_the_first_step_whose_hysteresis_holds() {
        let c = curve();
        // From 255 at 57: 75's band ends at 70 (passed), 60's at 55 (not passed): stop at 160.
        let d = c.decide(Some(3), 57.0);
        assert_eq!((d.level, d.target, d.pwm, d.action), (2, 1, 160, Action::Down));
    }

    #[test]
    fn pwm_read_back() {
        let c = curve();
        assert_eq!(c.level_of_pwm(160), Some(2));
        assert_eq!(c.level_of_pwm(30), Some(0));
        assert_eq!(c.level_of_pwm(100), None);
    }
}
