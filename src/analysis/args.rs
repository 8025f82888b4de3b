//! Binding a template's arguments for one run: the built-ins, then each
//! declared argument from the run's args, the template's default, or a
//! Secret (looked up by the caller, since reading it is I/O).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::SecretKeySelector;

use crate::crd::{AnalysisArg, AnalysisRunSpec, TemplateArg};

/// Arguments bound so far, and the ones still to read from Secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound<'a> {
    pub values: BTreeMap<String, String>,
    /// Argument name and the Secret key that holds its value.
    pub from_secrets: Vec<(&'a str, &'a SecretKeySelector)>,
}

/// Bind `declared` for `run` in `namespace`. A value given by the run wins,
/// then the template's default, then its Secret; an argument with none of
/// them is an error naming it.
pub fn bind<'a>(
    run: &AnalysisRunSpec,
    namespace: &str,
    declared: &'a [TemplateArg],
) -> Result<Bound<'a>, String> {
    let mut values = BTreeMap::from([
        ("namespace".to_string(), namespace.to_string()),
        ("rollout".to_string(), run.rollout.clone()),
        ("canary-hash".to_string(), run.canary_revision.clone()),
        ("stable-hash".to_string(), run.stable_revision.clone()),
        ("baseline-hash".to_string(), run.stable_revision.clone()),
    ]);
    let mut from_secrets = Vec::new();
    for arg in declared {
        let given = given(&run.args, &arg.name);
        match (given, &arg.value, &arg.value_from) {
            (Some(v), _, _) | (None, Some(v), _) => {
                values.insert(arg.name.clone(), v.clone());
            }
            (None, None, Some(from)) => {
                from_secrets.push((arg.name.as_str(), &from.secret_key_ref))
            }
            (None, None, None) => return Err(arg.name.clone()),
        }
    }
    Ok(Bound {
        values,
        from_secrets,
    })
}

fn given<'a>(args: &'a [AnalysisArg], name: &str) -> Option<&'a String> {
    args.iter()
        .find(|a| a.name == name)
        .and_then(|a| a.value.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::analysis_template::ArgValueFrom;

    fn declared(name: &str, value: Option<&str>, secret: bool) -> TemplateArg {
        TemplateArg {
            name: name.into(),
            value: value.map(Into::into),
            value_from: secret.then(|| ArgValueFrom {
                secret_key_ref: SecretKeySelector {
                    name: "creds".into(),
                    key: name.into(),
                    ..Default::default()
                },
            }),
        }
    }

    #[test]
    fn the_run_wins_then_the_default_then_the_secret_and_none_is_an_error() {
        let run = AnalysisRunSpec {
            rollout: "web".into(),
            canary_revision: "c1".into(),
            stable_revision: "s1".into(),
            args: vec![AnalysisArg {
                name: "service".into(),
                value: Some("web-canary".into()),
            }],
            ..Default::default()
        };
        let args = [
            declared("service", Some("default-service"), true),
            declared("window", Some("5m"), false),
            declared("token", None, true),
        ];
        let bound = bind(&run, "shop", &args).expect("bound");
        assert_eq!(bound.values["service"], "web-canary");
        assert_eq!(bound.values["window"], "5m");
        assert_eq!(bound.values["namespace"], "shop");
        assert_eq!(bound.values["baseline-hash"], "s1");
        assert_eq!(bound.from_secrets.len(), 1);
        assert_eq!(bound.from_secrets[0].0, "token");
        let missing = [declared("threshold", None, false)];
        assert_eq!(bind(&run, "shop", &missing), Err("threshold".to_string()));
    }
}
