//! The dashboard (`GET /ui`): one HTML page, one script and one stylesheet, compiled into the
//! binary from `server/ui/`. The page talks only to the public REST API, like any client, so
//! it shows exactly what an API user sees; nothing here reads the node.

use super::errors::{ApiError, Reply};

/// One file of the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiAsset {
    Page,
    Script,
    Stylesheet,
}

impl UiAsset {
    /// The asset a path under `/ui` names (`/ui`, `/ui/`, `/ui/app.js`, `/ui/style.css`);
    /// `None` for anything else, which is answered 404 like any unknown route.
    pub fn from_path(path: &str) -> Option<UiAsset> {
        match path {
            "/ui" | "/ui/" | "/ui/index.html" => Some(UiAsset::Page),
            "/ui/app.js" => Some(UiAsset::Script),
            "/ui/style.css" => Some(UiAsset::Stylesheet),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            UiAsset::Page => "text/html; charset=utf-8",
            UiAsset::Script => "text/javascript; charset=utf-8",
            UiAsset::Stylesheet => "text/css; charset=utf-8",
        }
    }

    fn text(self) -> &'static str {
        match self {
            UiAsset::Page => include_str!("../../ui/index.html"),
            UiAsset::Script => include_str!("../../ui/app.js"),
            UiAsset::Stylesheet => include_str!("../../ui/style.css"),
        }
    }
}

/// The asset's bytes with its content type. They change only with the binary, but a node may
/// be upgraded in place, so the browser revalidates instead of caching for long.
pub fn serve(asset: UiAsset) -> Reply {
    Reply {
        status: 200,
        content_type: asset.content_type(),
        body: asset.text().as_bytes().to_vec(),
        headers: vec![("Cache-Control", "no-cache".to_owned())],
    }
}

/// The route of a path under `/ui`, or the same 404 as any unknown path.
pub fn parse(method: &str, path: &str) -> Result<UiAsset, ApiError> {
    UiAsset::from_path(path).ok_or_else(|| ApiError::not_found_route(method, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_content_type_and_unknown_ones_are_404() {
        for (path, content_type) in [
            ("/ui", "text/html; charset=utf-8"),
            ("/ui/", "text/html; charset=utf-8"),
            ("/ui/app.js", "text/javascript; charset=utf-8"),
            ("/ui/style.css", "text/css; charset=utf-8"),
        ] {
            let reply = serve(parse("GET", path).unwrap());
            assert_eq!((reply.status, reply.content_type), (200, content_type));
            assert!(!reply.body.is_empty(), "{path}");
        }
        let error = parse("GET", "/ui/missing.js").unwrap_err();
        assert_eq!((error.status, error.code), (404, "no_route"));
    }

    /// The page loads its script and stylesheet by the paths served above, and nothing from
    /// another host (no CDN: the dashboard works on a machine without internet).
    #[test]
    fn the_page_loads_only_its_own_assets() {
        let page = UiAsset::Page.text();
        assert!(page.contains("src=\"/ui/app.js\""));
        assert!(page.contains("href=\"/ui/style.css\""));
        for asset in [UiAsset::Page, UiAsset::Script, UiAsset::Stylesheet] {
            assert!(!asset.text().contains("https://"), "{asset:?}");
        }
    }
}
