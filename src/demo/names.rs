//! Word lists for believable names: companies by country, product families by category.

/// (country, language, company name prefixes, stems, legal suffixes).
pub type Country = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// Countries customers come from.
pub const COUNTRIES: &[Country] = &[
    (
        "NL",
        "nl",
        &[
            "Van Dijk", "De Vries", "Bakker", "Jansen", "Visser", "Smit", "Mulder", "De Boer",
            "Brouwer", "Hendriks",
        ],
        &[
            "Installatietechniek",
            "Bouw",
            "Metaalwerken",
            "Techniek",
            "Onderhoud",
            "Machinebouw",
            "Industrie",
        ],
        &["B.V.", "B.V.", "N.V."],
    ),
    (
        "DE",
        "de",
        &[
            "Rhein", "Becker", "Schmidt", "Hoffmann", "Krüger", "Wagner", "Neumann", "Ruhr",
            "Weser", "Lindner",
        ],
        &[
            "Bautechnik",
            "Maschinenbau",
            "Anlagenbau",
            "Industrieservice",
            "Haustechnik",
            "Fördertechnik",
            "Metallbau",
        ],
        &["GmbH", "GmbH & Co. KG", "AG"],
    ),
    (
        "BE",
        "nl",
        &[
            "Peeters", "Janssens", "Maes", "Claes", "Wouters", "Dubois", "Lambert",
        ],
        &[
            "Technics",
            "Industrie",
            "Onderhoud",
            "Constructie",
            "Engineering",
        ],
        &["NV", "BV", "SRL"],
    ),
    (
        "FR",
        "fr",
        &[
            "Moreau",
            "Lefèvre",
            "Garnier",
            "Rousseau",
            "Faure",
            "Mercier",
            "Bonnet",
            "Lyonnaise",
            "Rhône",
        ],
        &[
            "Maintenance",
            "Industrie",
            "Équipements",
            "Mécanique",
            "Services Techniques",
            "Bâtiment",
        ],
        &["SARL", "SAS", "SA"],
    ),
    (
        "GB",
        "en",
        &[
            "Whitfield",
            "Harrington",
            "Ashworth",
            "Pennine",
            "Severn",
            "Thornton",
            "Caldwell",
        ],
        &[
            "Engineering",
            "Fabrications",
            "Industrial Services",
            "Plant Hire",
            "Maintenance",
        ],
        &["Ltd", "Ltd", "plc"],
    ),
    (
        "CH",
        "de",
        &["Alpen", "Zürcher", "Berner", "Keller", "Meier", "Brunner"],
        &[
            "Präzisionstechnik",
            "Anlagen",
            "Maschinen",
            "Gebäudetechnik",
        ],
        &["AG", "GmbH"],
    ),
    (
        "PL",
        "pl",
        &["Kowalski", "Nowak", "Wiśniewski", "Mazur", "Wójcik"],
        &["Technika", "Budownictwo", "Serwis", "Instalacje"],
        &["Sp. z o.o.", "S.A."],
    ),
];

/// Countries outside the EU customs union: shipments need export documents.
pub const EXPORT_COUNTRIES: &[&str] = &["GB", "CH"];

/// A product family: a noun and its variants.
pub type Family = (&'static str, &'static [&'static str]);

/// (category, dangerous goods, product families).
pub const CATEGORIES: &[(&str, bool, &[Family])] = &[
    (
        "Fasteners",
        false,
        &[
            (
                "Hex bolt",
                &[
                    "M6x20 8.8 zinc",
                    "M8x30 8.8 zinc",
                    "M10x40 10.9",
                    "M12x50 8.8 HDG",
                    "M16x80 A2",
                ],
            ),
            (
                "Socket cap screw",
                &["M5x16 12.9", "M6x25 12.9", "M8x40 A4", "M10x30 12.9"],
            ),
            (
                "Hex nut",
                &["M6 8", "M8 A2", "M10 8 zinc", "M12 10", "M16 A4"],
            ),
            ("Anchor bolt", &["M10x90", "M12x110", "M16x145"]),
        ],
    ),
    (
        "Bearings",
        false,
        &[
            (
                "Deep groove ball bearing",
                &["6204-2RS", "6205-2Z", "6206-2RS", "6305-2RS", "6007-2Z"],
            ),
            (
                "Tapered roller bearing",
                &["30205", "30206", "32008", "32210"],
            ),
            (
                "Pillow block unit",
                &["UCP204", "UCP205", "UCP206", "UCF207"],
            ),
        ],
    ),
    (
        "Hydraulics",
        false,
        &[
            (
                "Hydraulic hose",
                &["1SN DN10 1m", "2SN DN12 2m", "4SH DN19 1.5m", "R2AT 3/8 2m"],
            ),
            ("Gear pump", &["8 cc/rev", "11 cc/rev", "16 cc/rev"]),
            ("Directional valve", &["4/3 CETOP3 24V", "4/2 CETOP5 230V"]),
        ],
    ),
    (
        "Pneumatics",
        false,
        &[
            (
                "Pneumatic cylinder",
                &["ISO 15552 32x100", "ISO 15552 50x200", "ISO 6432 20x50"],
            ),
            (
                "Push-in fitting",
                &["6mm 1/8", "8mm 1/4", "10mm 3/8", "12mm 1/2"],
            ),
            ("Air filter regulator", &["G1/4", "G3/8", "G1/2"]),
        ],
    ),
    (
        "Power Transmission",
        false,
        &[
            ("V-belt", &["SPA 1250", "SPZ 1000", "SPB 2000", "XPA 1400"]),
            ("Roller chain", &["08B-1 5m", "10B-1 5m", "12B-2 5m"]),
            ("Gear motor", &["0.37kW i=20", "0.75kW i=30", "1.5kW i=15"]),
        ],
    ),
    (
        "Electrical",
        false,
        &[
            (
                "Inductive sensor",
                &["M12 PNP NO", "M18 PNP NC", "M30 NPN NO"],
            ),
            ("Contactor", &["9A 24VDC", "18A 230VAC", "32A 24VDC"]),
            (
                "Cable",
                &["H07RN-F 3G1.5 50m", "NYM-J 5x2.5 100m", "ÖLFLEX 4G1 50m"],
            ),
        ],
    ),
    (
        "Safety",
        false,
        &[
            (
                "Safety glove",
                &["cut C size 9", "cut D size 10", "nitrile size 8"],
            ),
            ("Safety goggle", &["clear AF", "tinted", "over-spec"]),
            ("Ear defender", &["SNR 30", "SNR 35 helmet"]),
        ],
    ),
    (
        "Adhesives & Chemicals",
        true,
        &[
            (
                "Threadlocker",
                &["medium 50ml", "high 50ml", "medium 250ml"],
            ),
            ("Industrial cleaner", &["5L", "20L"]),
            ("Contact adhesive", &["1L", "5L"]),
        ],
    ),
    (
        "Welding",
        true,
        &[
            (
                "Welding wire",
                &["SG2 1.0mm 15kg", "SG2 0.8mm 5kg", "316LSi 1.0mm"],
            ),
            ("Argon mix cylinder", &["20L 200bar", "50L 200bar"]),
            ("Electrode", &["E6013 2.5mm", "E7018 3.2mm"]),
        ],
    ),
    (
        "Tools",
        false,
        &[
            ("Cordless drill", &["18V 2Ah", "18V 5Ah brushless"]),
            ("Torque wrench", &["20-100Nm", "60-300Nm"]),
            ("Cutting disc", &["125x1.0 inox", "230x1.9"]),
        ],
    ),
];

/// Brands used as product name suffixes.
pub const BRANDS: &[&str] = &["NW", "ProLine", "Industra", "Veltor", "Kaltek", "Meridian"];

/// (supplier name, country, lead time days, on-time rate, confirmation rate).
pub const SUPPLIERS: &[(&str, &str, u32, f32, f32)] = &[
    ("Ningbo Precision Fasteners Co.", "CN", 45, 0.62, 0.55),
    ("Zhejiang Bearing Works Ltd.", "CN", 50, 0.58, 0.5),
    ("Shenzhen Kaida Electric", "CN", 40, 0.7, 0.65),
    ("Dongguan Hydraulic Parts Co.", "CN", 55, 0.55, 0.45),
    ("Hai Phong Industrial Supply", "VN", 42, 0.66, 0.6),
    ("Pune Forge & Castings Pvt.", "IN", 48, 0.6, 0.5),
    ("Taichung Pneumatic Corp.", "TW", 30, 0.82, 0.8),
    ("Bursa Makina Sanayi A.Ş.", "TR", 21, 0.78, 0.75),
    ("Schwaben Antriebstechnik GmbH", "DE", 10, 0.94, 0.95),
    ("Lombardia Valvole S.p.A.", "IT", 14, 0.88, 0.9),
    ("Poznań Narzędzia S.A.", "PL", 9, 0.9, 0.92),
    ("Great Lakes Safety Inc.", "US", 28, 0.85, 0.85),
    ("Osaka Seiki Trading", "JP", 35, 0.93, 0.95),
    ("Rhône Chimie Industrielle", "FR", 7, 0.92, 0.95),
];

/// (carrier, on-time rate, transit hours).
pub const CARRIERS: &[(&str, f32, u32)] = &[
    ("DHL Freight", 0.94, 36),
    ("DB Schenker", 0.91, 48),
    ("PostNL Pakketten", 0.96, 24),
    ("Geodis", 0.84, 48),
    ("Budget Road Lines", 0.71, 72),
];

/// Odoo users who edit orders.
pub const USERS: &[&str] = &[
    "Marc Demo",
    "Sanne Jacobs",
    "Lukas Weber",
    "Claire Martin",
    "Tom Peeters",
];
