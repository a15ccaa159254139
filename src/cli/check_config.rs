//! `tiaochu check-config`: loads every configured input the service needs (settings, roster,
//! calendar) and reports problems as errors and things that will stop messages from arriving as
//! warnings, so an admin can fix them before starting the service.

use crate::roster::Roster;
use crate::settings::{DingtalkMode, Settings};

/// Exit 0 when the service can start (warnings allowed), 1 when something must be fixed.
pub fn run(settings: &Settings) -> anyhow::Result<i32> {
    let mut errors: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();

    match Roster::load(&settings.roster.path) {
        Ok(roster) => {
            println!(
                "名单 {}：{} 个单位，{} 人",
                settings.roster.path.display(),
                roster.units().len(),
                roster.people().len()
            );
            warnings.extend(roster.warnings());
        }
        Err(e) => errors.push(e.to_string()),
    }

    let dt = &settings.dingtalk;
    if dt.mode != DingtalkMode::Sandbox {
        for (key, empty) in [
            ("app_key", dt.app_key.is_empty()),
            ("app_secret", dt.app_secret.is_empty()),
            ("robot_code", dt.robot_code.is_empty()),
        ] {
            if empty {
                errors.push(format!(
                    "[dingtalk] mode 不是 sandbox，但 {key} 未配置（可用环境变量 TIAOCHU_DINGTALK__{}）",
                    key.to_uppercase()
                ));
            }
        }
    }

    for w in &warnings {
        println!("警告：{w}");
    }
    for e in &errors {
        eprintln!("错误：{e}");
    }
    if errors.is_empty() {
        println!("配置检查通过（{} 条警告）。", warnings.len());
        Ok(0)
    } else {
        eprintln!(
            "配置检查未通过：{} 个错误，{} 条警告。",
            errors.len(),
            warnings.len()
        );
        Ok(1)
    }
}
