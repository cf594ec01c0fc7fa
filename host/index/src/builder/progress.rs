//! The progress bar a build draws on standard error: indicatif with the
//! `progress` feature; without it, a bar that draws nothing, so that
//! [`BuildOptions::progress`](crate::BuildOptions::progress) and
//! [`IndexBuilder::progress`](crate::IndexBuilder::progress) are accepted
//! and ignored.

/// A progress bar over the bytes of the dump, with a message for the phase.
pub(super) struct Progress {
    /// The bar; hidden when not asked for.
    #[cfg(feature = "progress")]
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// A bar over `len` bytes, drawn only if `on` (and the crate was built
    /// with the `progress` feature).
    pub(super) fn new(on: bool, len: u64) -> Progress {
        #[cfg(feature = "progress")]
        {
            use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
            if !on {
                return Progress {
                    bar: ProgressBar::hidden(),
                };
            }
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{msg:16} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message("scanning dump");
            Progress { bar }
        }
        #[cfg(not(feature = "progress"))]
        {
            let _ = (on, len);
            Progress {}
        }
    }

    /// Names the phase under way, e.g. "sorting titles".
    pub(super) fn message(&self, message: &'static str) {
        #[cfg(feature = "progress")]
        self.bar.set_message(message);
        #[cfg(not(feature = "progress"))]
        let _ = message;
    }

    /// Moves the bar to byte `pos` of the dump.
    pub(super) fn position(&self, pos: u64) {
        #[cfg(feature = "progress")]
        self.bar.set_position(pos);
        #[cfg(not(feature = "progress"))]
        let _ = pos;
    }

    /// Removes the bar from the terminal.
    pub(super) fn finish(&self) {
        #[cfg(feature = "progress")]
        self.bar.finish_and_clear();
    }
}
