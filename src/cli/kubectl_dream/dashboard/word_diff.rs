//! A changed entry as a reader compares it: the words removed and the words added, in place.

use similar::{ChangeTag, TextDiff};

/// One run of words and whether it was kept, removed or added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Same(String),
    Removed(String),
    Added(String),
}

/// `before` to `after` word by word (whitespace kept), adjacent runs of one kind joined.
pub fn word_diff(before: &str, after: &str) -> Vec<Piece> {
    let diff = TextDiff::from_words(before, after);
    let mut pieces: Vec<Piece> = Vec::new();
    for change in diff.iter_all_changes() {
        let text = change.value();
        match (pieces.last_mut(), change.tag()) {
            (Some(Piece::Same(run)), ChangeTag::Equal)
            | (Some(Piece::Removed(run)), ChangeTag::Delete)
            | (Some(Piece::Added(run)), ChangeTag::Insert) => run.push_str(text),
            (_, ChangeTag::Equal) => pieces.push(Piece::Same(text.to_string())),
            (_, ChangeTag::Delete) => pieces.push(Piece::Removed(text.to_string())),
            (_, ChangeTag::Insert) => pieces.push(Piece::Added(text.to_string())),
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_words_are_marked_in_place() {
        assert_eq!(
            word_diff("Look accounts up by email.", "Look accounts up by billing id."),
            vec![
                Piece::Same("Look accounts up by ".into()),
                Piece::Removed("email.".into()),
                Piece::Added("billing id.".into()),
            ]
        );
        assert_eq!(word_diff("same", "same"), vec![Piece::Same("same".into())]);
        assert_eq!(word_diff("", "new"), vec![Piece::Added("new".into())]);
    }
}
