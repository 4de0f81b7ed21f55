//! The managed identities the dev authority issues tokens for. The endpoints serving them
//! are in `server::managed_identity`.

/// The managed identities the authority issues tokens for, and the App Service header.
#[derive(Debug)]
pub(crate) struct Identities {
    /// Client ids, lower case; the first is the one used when a request names none (the
    /// "system-assigned" identity).
    pub(crate) client_ids: Vec<String>,
    header: String,
}

impl Identities {
    pub(crate) fn new(client_ids: Vec<String>, header: String) -> Self {
        Self {
            client_ids: client_ids
                .into_iter()
                .map(|c| c.trim().to_ascii_lowercase())
                .collect(),
            header,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.client_ids.is_empty()
    }

    pub(crate) fn header(&self) -> &str {
        &self.header
    }
}
