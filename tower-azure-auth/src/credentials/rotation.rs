//! Certificate rotation for [`ConfidentialClient`](super::ConfidentialClient): the proactive
//! reload before a certificate's `notAfter` (or its Key Vault key version's `exp`), spread by
//! jitter so a fleet of replicas does not read the vault at the same moment, and the
//! observers' events. The engine calls it at a few points; the decisions are plain functions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::credential::ClientCredential;
use super::observer::{CertificateEvent, CertificateInfo, Observers};

/// The default proactive reload window: reload between 24 h and 12 h before expiry.
pub(crate) const DEFAULT_PROACTIVE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The least time between two proactive reloads that brought no new certificate.
pub(crate) const PROACTIVE_RETRY: Duration = Duration::from_secs(10 * 60);

/// When the certificate or its key stops signing: the earlier of `notAfter` and the
/// signer's [`key_expires_at`](super::Signer::key_expires_at).
pub(crate) fn expiry(credential: &ClientCredential) -> Option<(SystemTime, SystemTime)> {
    match credential {
        ClientCredential::Certificate(c) => Some((c.not_before(), c.not_after())),
        ClientCredential::Signer(s) => {
            let certificate = s.certificate();
            let not_after = certificate.not_after();
            let end = s.key_expires_at().map_or(not_after, |k| k.min(not_after));
            Some((certificate.not_before(), end))
        }
        _ => None,
    }
}

/// The moment to reload ahead of `end`: `end - window + jitter × window / 2`, with `jitter`
/// in `[0, 1)`; the window is at most half the validity period, so a short-lived certificate
/// is not reloaded on every request.
pub(crate) fn reload_at(
    start: SystemTime,
    end: SystemTime,
    window: Duration,
    jitter: f64,
) -> SystemTime {
    let lifetime = end.duration_since(start).unwrap_or_default();
    let window = window.min(lifetime / 2);
    let spread = window.mul_f64(jitter.clamp(0.0, 1.0) / 2.0);
    (end - window) + spread
}

/// A uniform random number in `[0, 1)`.
pub(crate) fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    // 53 random bits: every f64 in [0, 1) with that resolution.
    #[allow(clippy::cast_precision_loss)]
    let fraction = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
    fraction
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The rotation state of one client.
#[derive(Debug)]
pub(crate) struct Rotation {
    window: Option<Duration>,
    /// Unix milliseconds of the next proactive reload (0: none).
    reload_at: AtomicU64,
    observers: Observers,
}

impl Rotation {
    pub(crate) fn new(window: Option<Duration>, observers: Observers) -> Self {
        Self {
            window,
            reload_at: AtomicU64::new(0),
            observers,
        }
    }

    /// Whether the proactive reload is due.
    pub(crate) fn due(&self, now: SystemTime) -> bool {
        let at = self.reload_at.load(Ordering::SeqCst);
        at != 0 && millis(now) >= at
    }

    /// The next proactive reload, if one is scheduled.
    pub(crate) fn next_reload(&self) -> Option<SystemTime> {
        let at = self.reload_at.load(Ordering::SeqCst);
        (at != 0).then(|| UNIX_EPOCH + Duration::from_millis(at))
    }

    /// A credential was loaded from the source and installed in place of `previous`.
    pub(crate) fn installed(
        &self,
        previous: Option<&ClientCredential>,
        current: &ClientCredential,
        now: SystemTime,
    ) {
        self.schedule(current, now);
        if self.observers.is_empty() {
            return;
        }
        let old = previous.and_then(CertificateInfo::of_credential);
        let new = CertificateInfo::of_credential(current);
        // A reload that brings the same certificate is no event.
        if let Some(new) = new.as_ref().filter(|new| old.as_ref() != Some(*new)) {
            if let Some(old) = &old {
                self.observers.emit(&CertificateEvent::Deselected(old));
            }
            self.observers.emit(&CertificateEvent::Selected(new));
        }
    }

    /// Sets the next proactive reload for `current`: ahead of its expiry, jittered; no
    /// earlier than [`PROACTIVE_RETRY`] from now.
    fn schedule(&self, current: &ClientCredential, now: SystemTime) {
        let at = match (self.window, expiry(current)) {
            (Some(window), Some((start, end))) => {
                let at = reload_at(start, end, window, random_fraction());
                millis(at.max(now + PROACTIVE_RETRY))
            }
            _ => 0,
        };
        self.reload_at.store(at, Ordering::SeqCst);
    }

    /// A reload failed: try again after [`PROACTIVE_RETRY`] when one was due.
    pub(crate) fn load_failed(
        &self,
        current: Option<&ClientCredential>,
        error: &(dyn std::error::Error + Send + Sync + 'static),
        now: SystemTime,
    ) {
        if self.reload_at.load(Ordering::SeqCst) != 0 {
            self.reload_at
                .store(millis(now + PROACTIVE_RETRY), Ordering::SeqCst);
        }
        self.failed(current, error);
    }

    /// Using the credential failed (a signer error, a refusal by the authority).
    pub(crate) fn failed(
        &self,
        current: Option<&ClientCredential>,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) {
        if self.observers.is_empty() {
            return;
        }
        let info = current.and_then(CertificateInfo::of_credential);
        self.observers.emit(&CertificateEvent::Failed {
            certificate: info.as_ref(),
            error,
        });
    }

    /// The authority issued a token for this credential.
    pub(crate) fn used(&self, credential: &ClientCredential) {
        if self.observers.is_empty() {
            return;
        }
        if let Some(info) = CertificateInfo::of_credential(credential) {
            self.observers
                .emit(&CertificateEvent::SuccessfullyUsed(&info));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_moments_fall_in_the_jitter_window() {
        struct Case {
            name: &'static str,
            lifetime_days: u64,
            window_hours: u64,
            jitter: f64,
            expected_hours_before_end: f64,
        }
        let cases = [
            Case {
                name: "no jitter: the window's start",
                lifetime_days: 365,
                window_hours: 24,
                jitter: 0.0,
                expected_hours_before_end: 24.0,
            },
            Case {
                name: "full jitter: half the window",
                lifetime_days: 365,
                window_hours: 24,
                jitter: 0.999_999,
                expected_hours_before_end: 12.0,
            },
            Case {
                name: "short certificate: the window shrinks to half its life",
                lifetime_days: 1,
                window_hours: 48,
                jitter: 0.0,
                expected_hours_before_end: 12.0,
            },
        ];
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for case in cases {
            let end = start + Duration::from_secs(case.lifetime_days * 86_400);
            let at = reload_at(
                start,
                end,
                Duration::from_secs(case.window_hours * 3600),
                case.jitter,
            );
            let before = end.duration_since(at).unwrap().as_secs_f64() / 3600.0;
            assert!(
                (before - case.expected_hours_before_end).abs() < 0.01,
                "{}: {before} h before the end",
                case.name
            );
        }
    }

    #[derive(Debug)]
    struct VersionedKey {
        certificate: crate::credentials::PublicCertificate,
        key_expires_at: Option<SystemTime>,
    }

    impl crate::credentials::Signer for VersionedKey {
        fn certificate(&self) -> crate::credentials::PublicCertificate {
            self.certificate.clone()
        }

        fn sign<'a>(
            &'a self,
            _: crate::credentials::AssertionAlgorithm,
            _: &'a [u8],
        ) -> crate::credentials::BoxFuture<'a, Result<Vec<u8>, crate::credentials::SignerError>>
        {
            Box::pin(std::future::ready(Ok(Vec::new())))
        }

        fn backend(&self) -> &'static str {
            "test"
        }

        fn key_expires_at(&self) -> Option<SystemTime> {
            self.key_expires_at
        }
    }

    #[test]
    fn the_earlier_of_not_after_and_the_key_versions_exp_is_the_end() {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8: Pkcs8V1Der<'_> = rsa.as_der().unwrap();
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_ref()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .unwrap();
        let cert = rcgen::CertificateParams::new(vec!["c".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let certificate =
            crate::credentials::PublicCertificate::from_der_or_pem(cert.der()).unwrap();
        let not_after = certificate.not_after();
        struct Case {
            name: &'static str,
            key_expires_at: Option<SystemTime>,
            expected: SystemTime,
        }
        let earlier = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let cases = [
            Case {
                name: "no key expiry: notAfter",
                key_expires_at: None,
                expected: not_after,
            },
            Case {
                name: "the key version expires first",
                key_expires_at: Some(earlier),
                expected: earlier,
            },
            Case {
                name: "the certificate expires first",
                key_expires_at: Some(not_after + Duration::from_secs(86_400)),
                expected: not_after,
            },
        ];
        for case in cases {
            let credential = ClientCredential::Signer(std::sync::Arc::new(VersionedKey {
                certificate: certificate.clone(),
                key_expires_at: case.key_expires_at,
            }));
            let (_, end) = expiry(&credential).unwrap();
            assert_eq!(end, case.expected, "{}", case.name);
        }
    }

    #[test]
    fn random_fractions_are_in_range_and_vary() {
        let values: Vec<f64> = (0..64).map(|_| random_fraction()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.windows(2).any(|w| w[0] != w[1]));
    }
}
