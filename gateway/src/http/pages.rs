//! The few HTML pages the gateway shows itself, in French and English. Every value written into
//! a page goes through [`escape`]. Error pages say what happened in general terms and give the
//! correlation id; the precise reason is in the audit log, never on the page.

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f5f5fe;color:#161616;margin:0}}
main{{max-width:28rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:.5rem;box-shadow:0 1px 4px #0002}}
h1{{font-size:1.4rem;margin-top:0}} .en{{color:#555}} label{{display:block;margin-top:1rem;font-weight:600}}
input{{width:100%;box-sizing:border-box;padding:.6rem;margin-top:.3rem;font-size:1rem}}
button{{margin-top:1.5rem;padding:.7rem 1.2rem;font-size:1rem;background:#000091;color:#fff;border:0;border-radius:.25rem;cursor:pointer}}
.error{{background:#ffe9e9;border-left:4px solid #ce0500;padding:.6rem;margin:1rem 0}}
.ref{{font-size:.85rem;color:#555;margin-top:2rem}} code{{user-select:all}}
</style>
</head>
<body><main>
{body}
</main></body>
</html>
"#,
        title = escape(title)
    )
}

/// A message in both languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bilingual {
    pub fr: &'static str,
    pub en: &'static str,
}

pub fn error_page(title: Bilingual, message: Bilingual, correlation_id: &str) -> String {
    layout(
        &format!("{} / {}", title.fr, title.en),
        &format!(
            r#"<h1>{tfr} <span class="en" lang="en">/ {ten}</span></h1>
<p>{mfr}</p>
<p class="en" lang="en">{men}</p>
<p class="ref">Référence de l'incident / Incident reference: <code>{id}</code></p>"#,
            tfr = escape(title.fr),
            ten = escape(title.en),
            mfr = escape(message.fr),
            men = escape(message.en),
            id = escape(correlation_id),
        ),
    )
}

/// Access refused because of the account itself (locked, expired, unknown to the directory).
pub fn account_page(
    app_name: &str,
    message: Bilingual,
    contact: Option<&str>,
    correlation_id: &str,
) -> String {
    let contact = contact
        .map(|c| {
            format!(
                r#"<p>Contact : <strong>{c}</strong> <span class="en" lang="en">/ Contact: <strong>{c}</strong></span></p>"#,
                c = escape(c)
            )
        })
        .unwrap_or_default();
    layout(
        "Accès refusé / Access denied",
        &format!(
            r#"<h1>Accès refusé <span class="en" lang="en">/ Access denied</span></h1>
<p>Application « {app} » : {mfr}</p>
<p class="en" lang="en">Application “{app}”: {men}</p>
{contact}
<p class="ref">Référence / Reference: <code>{id}</code></p>"#,
            app = escape(app_name),
            mfr = escape(message.fr),
            men = escape(message.en),
            id = escape(correlation_id),
        ),
    )
}

/// Access refused by the application's policy: which application, and whom to ask.
pub fn forbidden_page(app_name: &str, contact: Option<&str>, correlation_id: &str) -> String {
    let contact = match contact {
        Some(contact) => format!(
            r#"<p>Pour demander un accès, contactez : <strong>{c}</strong></p>
<p class="en" lang="en">To request access, contact: <strong>{c}</strong></p>"#,
            c = escape(contact)
        ),
        None => r#"<p>Pour demander un accès, contactez l'administrateur de l'application.</p>
<p class="en" lang="en">To request access, contact the application's administrator.</p>"#
            .to_owned(),
    };
    layout(
        "Accès refusé / Access denied",
        &format!(
            r#"<h1>Accès refusé <span class="en" lang="en">/ Access denied</span></h1>
<p>Vous êtes connecté, mais vous n'avez pas accès à l'application « {app} » (ou à cette partie de l'application).</p>
<p class="en" lang="en">You are signed in, but you do not have access to the application “{app}” (or to this part of it).</p>
{contact}
<p class="ref">Référence / Reference: <code>{id}</code></p>"#,
            app = escape(app_name),
            id = escape(correlation_id),
        ),
    )
}

pub struct LoginForm<'a> {
    pub app_name: &'a str,
    pub provider_name: &'a str,
    pub csrf_token: &'a str,
    pub username: &'a str,
    pub error: Option<Bilingual>,
    pub correlation_id: &'a str,
}

pub fn login_page(form: &LoginForm<'_>) -> String {
    let error = form
        .error
        .map(|e| {
            format!(
                r#"<div class="error" role="alert"><p>{}</p><p class="en" lang="en">{}</p></div>"#,
                escape(e.fr),
                escape(e.en)
            )
        })
        .unwrap_or_default();
    layout(
        "Connexion / Sign in",
        &format!(
            r#"<h1>Connexion <span class="en" lang="en">/ Sign in</span></h1>
<p>{app} — {provider}</p>
{error}
<form method="post" action="/.guichet/login" autocomplete="on">
<input type="hidden" name="csrf_token" value="{csrf}">
<label for="username">Identifiant ou courriel <span class="en" lang="en">/ Username or email</span></label>
<input id="username" name="username" type="text" autocomplete="username" required value="{username}" maxlength="256" autofocus>
<label for="password">Mot de passe <span class="en" lang="en">/ Password</span></label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256">
<button type="submit">Se connecter / Sign in</button>
</form>
<p class="ref">Référence / Reference: <code>{id}</code></p>"#,
            app = escape(form.app_name),
            provider = escape(form.provider_name),
            csrf = escape(form.csrf_token),
            username = escape(form.username),
            id = escape(form.correlation_id),
        ),
    )
}

pub fn logged_out_page(correlation_id: &str) -> String {
    layout(
        "Déconnecté / Signed out",
        &format!(
            r#"<h1>Vous êtes déconnecté <span class="en" lang="en">/ You are signed out</span></h1>
<p>Votre session est terminée. Fermez le navigateur sur un poste partagé.</p>
<p class="en" lang="en">Your session has ended. Close the browser on a shared computer.</p>
<p><a href="/">Se reconnecter / Sign in again</a></p>
<p class="ref">Référence / Reference: <code>{}</code></p>"#,
            escape(correlation_id)
        ),
    )
}

/// Signed out of Guichet, but the provider's logout could not be reached: its session (and
/// so a new sign-in without a password) may still be open in this browser.
pub fn provider_logout_failed_page(provider: &str, correlation_id: &str) -> String {
    layout(
        "Déconnexion incomplète / Sign-out incomplete",
        &format!(
            r#"<h1>Déconnexion incomplète <span class="en" lang="en">/ Sign-out incomplete</span></h1>
<p>Votre session sur ce service est terminée, mais {provider} n'a pas pu être joint : vous y
êtes peut-être encore connecté. <strong>Fermez votre navigateur</strong>, surtout sur un poste
partagé.</p>
<p class="en" lang="en">Your session on this service has ended, but {provider} could not be
reached: you may still be signed in there. <strong>Close your browser</strong>, especially on a
shared computer.</p>
<p class="ref">Référence / Reference: <code>{id}</code></p>"#,
            provider = escape(provider),
            id = escape(correlation_id)
        ),
    )
}

/// Asks before signing out when the request came from another site.
pub fn logout_confirm_page(return_to: Option<&str>, correlation_id: &str) -> String {
    let hidden = return_to
        .map(|to| {
            format!(
                r#"<input type="hidden" name="return_to" value="{}">"#,
                escape(to)
            )
        })
        .unwrap_or_default();
    layout(
        "Déconnexion / Sign out",
        &format!(
            r#"<h1>Se déconnecter ? <span class="en" lang="en">/ Sign out?</span></h1>
<form method="post" action="/.guichet/logout">{hidden}
<button type="submit">Se déconnecter / Sign out</button>
</form>
<p><a href="/">Rester connecté / Stay signed in</a></p>
<p class="ref">Référence / Reference: <code>{}</code></p>"#,
            escape(correlation_id)
        ),
    )
}

/// The provider chooser: `(link, name)` pairs.
pub fn chooser_page(choices: &[(String, String)], correlation_id: &str) -> String {
    let items: String = choices
        .iter()
        .map(|(href, name)| {
            format!(
                r#"<li><a href="{}">{}</a></li>"#,
                escape(href),
                escape(name)
            )
        })
        .collect();
    layout(
        "Connexion / Sign in",
        &format!(
            r#"<h1>Connexion <span class="en" lang="en">/ Sign in</span></h1>
<p>Choisissez comment vous connecter. <span class="en" lang="en">Choose how to sign in.</span></p>
<ul>{items}</ul>
<p class="ref">Référence / Reference: <code>{}</code></p>"#,
            escape(correlation_id)
        ),
    )
}

/// The auto-post page's only script, allowed by its hash in the page's CSP.
pub const AUTO_POST_SCRIPT: &str = "document.getElementById('auto').submit()";
/// `sha256-` + base64(SHA-256(AUTO_POST_SCRIPT)); a unit test keeps it in step.
pub const AUTO_POST_SCRIPT_HASH: &str = "sha256-frbOqu9NtXPbMrcyi7zwp54i2fcRIdeSOcvRAUSvdjI=";

/// An auto-submitting form (SAML POST binding). Every value is escaped; a button is there for
/// browsers without JavaScript.
pub fn auto_post_page(action: &str, fields: &[(String, String)], correlation_id: &str) -> String {
    let inputs: String = fields
        .iter()
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(name),
                escape(value)
            )
        })
        .collect();
    layout(
        "Connexion / Sign in",
        &format!(
            r#"<form method="post" action="{}" id="auto">{inputs}
<noscript><button type="submit">Continuer / Continue</button></noscript>
</form>
<script>{AUTO_POST_SCRIPT}</script>
<p class="ref">Référence / Reference: <code>{}</code></p>"#,
            escape(action),
            escape(correlation_id)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auto_post_script_hash_matches_the_script() {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(AUTO_POST_SCRIPT.as_bytes());
        let expected = format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        assert_eq!(AUTO_POST_SCRIPT_HASH, expected);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let page = auto_post_page(
            "https://idp.example/sso?a=1&b=\"",
            &[("RelayState".into(), "<script>x</script>".into())],
            "id",
        );
        assert!(!page.contains("<script>x</script>"));
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(page.contains("a=1&amp;b=&quot;"));
    }
}

/// Page texts used by the gateway, one place so translations stay consistent.
pub mod text {
    use super::Bilingual;

    pub const NOT_FOUND: Bilingual = Bilingual {
        fr: "Page introuvable",
        en: "Not found",
    };
    pub const NO_APP: Bilingual = Bilingual {
        fr: "Aucune application n'est publiée à cette adresse.",
        en: "No application is published at this address.",
    };
    pub const BAD_REQUEST: Bilingual = Bilingual {
        fr: "Requête invalide",
        en: "Bad request",
    };
    pub const BAD_PATH: Bilingual = Bilingual {
        fr: "L'adresse demandée est ambiguë ou mal formée.",
        en: "The requested address is ambiguous or malformed.",
    };
    pub const BAD_FORM: Bilingual = Bilingual {
        fr: "Le formulaire envoyé est invalide ou a expiré. Veuillez recommencer.",
        en: "The submitted form is invalid or has expired. Please try again.",
    };
    pub const UNAVAILABLE: Bilingual = Bilingual {
        fr: "Service momentanément indisponible",
        en: "Service temporarily unavailable",
    };
    pub const STORE_DOWN: Bilingual = Bilingual {
        fr: "Le service de sessions ne répond pas. Réessayez dans quelques instants.",
        en: "The session service is not responding. Please try again in a moment.",
    };
    pub const LOGIN_FAILED: Bilingual = Bilingual {
        fr: "Connexion impossible",
        en: "Sign-in failed",
    };
    pub const BAD_CREDENTIALS: Bilingual = Bilingual {
        fr: "Identifiant ou mot de passe incorrect.",
        en: "Incorrect username or password.",
    };
    pub const TOO_MANY: Bilingual = Bilingual {
        fr: "Trop de tentatives échouées. Réessayez plus tard.",
        en: "Too many failed attempts. Please try again later.",
    };
    pub const UPSTREAM_DOWN: Bilingual = Bilingual {
        fr: "L'application ne répond pas. Réessayez dans quelques instants.",
        en: "The application is not responding. Please try again in a moment.",
    };
    pub const UPSTREAM_SLOW: Bilingual = Bilingual {
        fr: "L'application n'a pas répondu à temps. Réessayez dans quelques instants.",
        en: "The application did not answer in time. Please try again in a moment.",
    };
    pub const METHOD: Bilingual = Bilingual {
        fr: "Méthode non autorisée",
        en: "Method not allowed",
    };
    pub const METHOD_TEXT: Bilingual = Bilingual {
        fr: "Cette adresse n'accepte pas cette méthode.",
        en: "This address does not accept this method.",
    };
    pub const SLOW_DOWN: Bilingual = Bilingual {
        fr: "Trop de connexions commencées depuis votre adresse. Réessayez dans une minute.",
        en: "Too many sign-ins started from your address. Please try again in a minute.",
    };
    pub const TRY_AGAIN: Bilingual = Bilingual {
        fr: "Le service est très sollicité. Réessayez dans quelques instants.",
        en: "The service is very busy. Please try again in a moment.",
    };
    pub const LOGIN_EXPIRED: Bilingual = Bilingual {
        fr: "Cette connexion a expiré ou a déjà été utilisée. Retournez à l'application pour recommencer.",
        en: "This sign-in has expired or was already used. Go back to the application to start again.",
    };
    pub const TICKET_INVALID: Bilingual = Bilingual {
        fr: "Votre ticket de connexion n'est pas valable (expiré, déjà utilisé ou émis pour un autre service). Recommencez la connexion depuis l'application.",
        en: "Your sign-in ticket is not valid (expired, already used or issued for another service). Please sign in again from the application.",
    };
    pub const PIVOT_INCOMPLETE: Bilingual = Bilingual {
        fr: "Le fournisseur d'identité n'a pas transmis toute l'identité nécessaire pour vous reconnaître. Vous n'êtes pas connecté.",
        en: "The identity provider did not send all of the identity needed to recognise you. You are not signed in.",
    };
    pub const LOGIN_REFUSED: Bilingual = Bilingual {
        fr: "La réponse du fournisseur d'identité n'a pas pu être vérifiée. Vous n'êtes pas connecté.",
        en: "The identity provider's answer could not be verified. You are not signed in.",
    };
    pub const PROVIDER_DENIED: Bilingual = Bilingual {
        fr: "Le fournisseur d'identité n'a pas autorisé la connexion (annulation ou refus).",
        en: "The identity provider did not allow the sign-in (cancelled or refused).",
    };
    pub const IDP_DOWN: Bilingual = Bilingual {
        fr: "Le fournisseur d'identité ne répond pas. Réessayez dans quelques instants.",
        en: "The identity provider is not responding. Please try again in a moment.",
    };
    pub const DIRECTORY_DOWN: Bilingual = Bilingual {
        fr: "L'annuaire ne répond pas : vos droits ne peuvent pas être vérifiés. Réessayez dans quelques instants.",
        en: "The directory is not responding: your access rights cannot be checked. Please try again in a moment.",
    };
    pub const ACCOUNT_UNKNOWN: Bilingual = Bilingual {
        fr: "votre compte n'est pas connu de l'annuaire de cette application.",
        en: "your account is not known to this application's directory.",
    };
    pub const ACCOUNT_AMBIGUOUS: Bilingual = Bilingual {
        fr: "votre identifiant correspond à plusieurs personnes dans l'annuaire ; l'accès est refusé tant que ce n'est pas corrigé.",
        en: "your identifier matches several people in the directory; access is refused until this is corrected.",
    };
    pub const ACCOUNT_LOCKED: Bilingual = Bilingual {
        fr: "votre compte est verrouillé.",
        en: "your account is locked.",
    };
    pub const ACCOUNT_NOT_YET: Bilingual = Bilingual {
        fr: "votre compte n'est pas encore ouvert (date de début de validité non atteinte).",
        en: "your account is not open yet (its validity has not started).",
    };
    pub const ACCOUNT_EXPIRED: Bilingual = Bilingual {
        fr: "votre compte a expiré (date de fin de validité dépassée).",
        en: "your account has expired (its validity has ended).",
    };
    pub const TOO_LARGE: Bilingual = Bilingual {
        fr: "La requête est trop volumineuse.",
        en: "The request is too large.",
    };
}
