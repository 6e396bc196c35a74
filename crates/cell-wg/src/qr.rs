//! QR codes of client configurations, for phones to scan.

use qrcode::render::svg;
use qrcode::{Color, EcLevel, QrCode};

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the configuration does not fit in a QR code: {0}")]
    TooLong(qrcode::types::QrError),
    #[error("encoding the PNG: {0}")]
    Png(#[from] png::EncodingError),
}

const QUIET_ZONE: usize = 4;
const PIXELS_PER_MODULE: usize = 6;

fn code(text: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(QrError::TooLong)
}

pub fn qr_svg(text: &str) -> Result<String, QrError> {
    Ok(code(text)?
        .render::<svg::Color>()
        .min_dimensions(256, 256)
        .quiet_zone(true)
        .build())
}

/// A black-on-white greyscale PNG.
pub fn qr_png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = code(text)?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET_ZONE) * PIXELS_PER_MODULE;
    let mut pixels = vec![255u8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = (index % width + QUIET_ZONE, index / width + QUIET_ZONE);
        for dy in 0..PIXELS_PER_MODULE {
            let row = (y * PIXELS_PER_MODULE + dy) * side;
            let start = row + x * PIXELS_PER_MODULE;
            pixels[start..start + PIXELS_PER_MODULE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).unwrap_or(u32::MAX);
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_and_svg_encode_the_text() {
        let png = qr_png("[Interface]\nPrivateKey = x\n").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert!(reader.info().width >= 21 * PIXELS_PER_MODULE as u32);
        let svg = qr_svg("hello").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        assert!(qr_png(&"x".repeat(5000)).is_err());
    }
}
