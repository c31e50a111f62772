//! A batch on paper: an HTML page with print CSS, a PDF, and a CSV, all from one [`Sheet`].

use chrono::{DateTime, Utc};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use super::codes::grouped;

/// What is printed on every card of a batch, and the cards.
#[derive(Debug, Clone)]
pub struct Sheet {
    /// The ISP's name (setting `isp_name`).
    pub isp_name: String,
    /// The package.
    pub plan_name: String,
    /// Price of one voucher.
    pub price_kes: i64,
    /// What the voucher gives: see [`terms`].
    pub terms: String,
    /// The batch.
    pub batch_id: i64,
    /// One card per voucher.
    pub cards: Vec<Card>,
}

/// One voucher on paper.
#[derive(Debug, Clone)]
pub struct Card {
    /// Its subscriber id (printed small, for support calls).
    pub voucher_id: i64,
    /// The code, as drawn.
    pub code: String,
}

/// "1 day", "3 hours", "90 minutes", "45 seconds".
pub fn human_seconds(s: i64) -> String {
    let (n, unit) = if s % 86_400 == 0 {
        (s / 86_400, "day")
    } else if s % 3_600 == 0 {
        (s / 3_600, "hour")
    } else if s % 60 == 0 {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// "1 GB", "500 MB" (binary or decimal, whichever divides evenly), else MB with a decimal.
pub fn human_bytes(b: i64) -> String {
    const GIB: i64 = 1 << 30;
    const MIB: i64 = 1 << 20;
    if b > 0 && b % GIB == 0 {
        format!("{} GB", b / GIB)
    } else if b > 0 && b % 1_000_000_000 == 0 {
        format!("{} GB", b / 1_000_000_000)
    } else if b % MIB == 0 {
        format!("{} MB", b / MIB)
    } else if b % 1_000_000 == 0 {
        format!("{} MB", b / 1_000_000)
    } else {
        format!("{:.1} MB", b as f64 / MIB as f64)
    }
}

/// What a voucher gives, in words: "Valid 1 day from first use, 1 GB, 2 hours online, use
/// by 2026-12-31".
pub fn terms(
    duration_seconds: i64,
    data_cap_bytes: Option<i64>,
    time_allowance_seconds: Option<i64>,
    valid_until: Option<DateTime<Utc>>,
) -> String {
    let mut t = format!("Valid {} from first use", human_seconds(duration_seconds));
    if let Some(b) = data_cap_bytes {
        t.push_str(&format!(", {}", human_bytes(b)));
    }
    if let Some(s) = time_allowance_seconds {
        t.push_str(&format!(", {} online", human_seconds(s)));
    }
    if let Some(v) = valid_until {
        t.push_str(&format!(", use by {}", v.format("%Y-%m-%d")));
    }
    t
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// The printable page: a grid of cut-out cards, three across an A4 page.
pub fn html(sheet: &Sheet) -> String {
    let isp = escape(&sheet.isp_name);
    let plan = escape(&sheet.plan_name);
    let terms = escape(&sheet.terms);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>{isp}: vouchers of batch {id}</title>\n<style>\n\
@page {{ size: A4; margin: 10mm; }}\n\
body {{ font-family: Helvetica, Arial, sans-serif; margin: 0; }}\n\
.grid {{ display: grid; grid-template-columns: repeat(3, 1fr); gap: 0; }}\n\
.card {{ border: 1px dashed #888; padding: 3mm 4mm; height: 30mm; box-sizing: border-box; \
break-inside: avoid; page-break-inside: avoid; }}\n\
.isp {{ font-weight: bold; font-size: 10pt; }}\n\
.plan {{ font-size: 9pt; }}\n\
.terms {{ font-size: 7pt; color: #333; }}\n\
.code {{ font-family: 'DejaVu Sans Mono', Consolas, monospace; font-size: 15pt; font-weight: bold; \
letter-spacing: 0.05em; margin: 1.5mm 0; }}\n\
.id {{ font-size: 6pt; color: #777; }}\n\
@media screen {{ body {{ margin: 10mm; }} }}\n\
</style></head><body>\n<div class=\"grid\">\n",
        id = sheet.batch_id
    );
    for c in &sheet.cards {
        out.push_str(&format!(
            "<div class=\"card\"><div class=\"isp\">{isp}</div>\
<div class=\"plan\">{plan} &middot; KES {price}</div>\
<div class=\"code\">{code}</div><div class=\"terms\">{terms}</div>\
<div class=\"id\">batch {batch} &middot; #{vid}</div></div>\n",
            price = sheet.price_kes,
            code = escape(&grouped(&c.code)),
            batch = sheet.batch_id,
            vid = c.voucher_id,
        ));
    }
    out.push_str("</div>\n</body></html>\n");
    out
}

/// The CSV export: one line per voucher, with a header.
pub fn csv(sheet: &Sheet) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "voucher_id",
        "code",
        "code_grouped",
        "package",
        "price_kes",
        "terms",
        "batch_id",
    ])?;
    for c in &sheet.cards {
        w.write_record([
            c.voucher_id.to_string(),
            c.code.clone(),
            grouped(&c.code),
            sheet.plan_name.clone(),
            sheet.price_kes.to_string(),
            sheet.terms.clone(),
            sheet.batch_id.to_string(),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Text for a base-14 font (no embedding, standard encoding): printable ASCII, anything
/// else shown as '?'.
fn pdf_text(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| {
            if (' '..='~').contains(&c) {
                c as u8
            } else {
                b'?'
            }
        })
        .collect()
}

/// The PDF: A4 pages of 3 x 8 cards with cut lines, the base-14 fonts only.
pub fn pdf(sheet: &Sheet) -> Vec<u8> {
    const PAGE_W: f32 = 595.0;
    const PAGE_H: f32 = 842.0;
    const MARGIN: f32 = 28.0;
    const COLS: usize = 3;
    const ROWS: usize = 8;
    let card_w = (PAGE_W - 2.0 * MARGIN) / COLS as f32;
    let card_h = (PAGE_H - 2.0 * MARGIN) / ROWS as f32;
    let per_page = COLS * ROWS;

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let sans = Ref::new(3);
    let sans_bold = Ref::new(4);
    let mono = Ref::new(5);
    let pages = sheet.cards.chunks(per_page).count().max(1);
    // Page i is object 6 + 2i, its content 7 + 2i.
    let page_ref = |i: usize| Ref::new(6 + 2 * i32::try_from(i).unwrap_or(i32::MAX / 4));
    let content_ref = |i: usize| Ref::new(7 + 2 * i32::try_from(i).unwrap_or(i32::MAX / 4));
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..pages).map(page_ref))
        .count(i32::try_from(pages).unwrap_or(i32::MAX));
    pdf.type1_font(sans).base_font(Name(b"Helvetica"));
    pdf.type1_font(sans_bold).base_font(Name(b"Helvetica-Bold"));
    pdf.type1_font(mono).base_font(Name(b"Courier-Bold"));
    let isp = pdf_text(&sheet.isp_name);
    let plan = pdf_text(&format!("{} - KES {}", sheet.plan_name, sheet.price_kes));
    let terms = pdf_text(&sheet.terms);

    let empty: &[Card] = &[];
    let chunks: Vec<&[Card]> = if sheet.cards.is_empty() {
        vec![empty]
    } else {
        sheet.cards.chunks(per_page).collect()
    };
    for (i, cards) in chunks.into_iter().enumerate() {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_ref(i));
        {
            let mut res = page.resources();
            let mut fonts = res.fonts();
            fonts.pair(Name(b"F1"), sans);
            fonts.pair(Name(b"F2"), sans_bold);
            fonts.pair(Name(b"F3"), mono);
        }
        page.finish();

        let mut c = Content::new();
        c.set_line_width(0.5);
        c.set_dash_pattern([3.0, 3.0], 0.0);
        c.set_stroke_gray(0.5);
        for (k, card) in cards.iter().enumerate() {
            let x = MARGIN + (k % COLS) as f32 * card_w;
            let top = PAGE_H - MARGIN - (k / COLS) as f32 * card_h;
            c.rect(x, top - card_h, card_w, card_h);
            c.stroke();
            let line = |c: &mut Content, font: &[u8], size: f32, dy: f32, text: &[u8]| {
                c.begin_text();
                c.set_font(Name(font), size);
                c.next_line(x + 10.0, top - dy);
                c.show(Str(text));
                c.end_text();
            };
            line(&mut c, b"F2", 10.0, 16.0, &isp);
            line(&mut c, b"F1", 8.5, 29.0, &plan);
            line(&mut c, b"F3", 15.0, 51.0, &pdf_text(&grouped(&card.code)));
            line(&mut c, b"F1", 6.0, 66.0, &terms);
            let id = format!("batch {} - #{}", sheet.batch_id, card.voucher_id);
            line(&mut c, b"F1", 5.5, 78.0, &pdf_text(&id));
        }
        pdf.stream(content_ref(i), &c.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(n: usize) -> Sheet {
        Sheet {
            isp_name: "Mtaani <Net> & Co".into(),
            plan_name: "Siku 1".into(),
            price_kes: 50,
            terms: terms(86_400, Some(1 << 30), Some(7_200), None),
            batch_id: 7,
            cards: (0..n)
                .map(|i| Card {
                    voucher_id: i as i64 + 100,
                    code: format!("ACEF3467X{}", i % 10),
                })
                .collect(),
        }
    }

    #[test]
    fn words() {
        assert_eq!(human_seconds(86_400), "1 day");
        assert_eq!(human_seconds(7 * 86_400), "7 days");
        assert_eq!(human_seconds(3_600), "1 hour");
        assert_eq!(human_seconds(5_400), "90 minutes");
        assert_eq!(human_seconds(61), "61 seconds");
        assert_eq!(human_bytes(1 << 30), "1 GB");
        assert_eq!(human_bytes(500_000_000), "500 MB");
        assert_eq!(human_bytes(2_000_000_000), "2 GB");
        assert_eq!(human_bytes(1_500_000), "1.4 MB");
        assert_eq!(
            sheet(0).terms,
            "Valid 1 day from first use, 1 GB, 2 hours online"
        );
    }

    #[test]
    fn html_escapes_and_groups() {
        let h = html(&sheet(2));
        assert!(h.contains("Mtaani &lt;Net&gt; &amp; Co"));
        assert!(h.contains("ACEF-3467-X0"));
        assert_eq!(h.matches("class=\"card\"").count(), 2);
        assert!(h.contains("@page"));
    }

    #[test]
    fn csv_quotes() {
        let mut s = sheet(1);
        s.plan_name = "Day, \"fast\"".into();
        let text = String::from_utf8(csv(&s).unwrap()).unwrap();
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("voucher_id,code,"));
        assert!(lines.next().unwrap().contains("\"Day, \"\"fast\"\"\""));
    }

    #[test]
    fn pdf_pages() {
        for (cards, pages) in [(0, 1), (24, 1), (25, 2), (49, 3)] {
            let p = pdf(&sheet(cards));
            assert!(p.starts_with(b"%PDF-"));
            let text = String::from_utf8_lossy(&p);
            assert!(text.contains(&format!("/Count {pages}")), "{cards}");
        }
    }
}
