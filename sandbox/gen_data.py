"""Embedded word lists for the sandbox seed generator (no external data files).

Small, hand-written lists: first names with their common nicknames, last names,
company name parts, job titles, and cities with the region, postal-code prefix and
phone area code that belong together (so an account's phone is valid for its
country and plausible for its city).
"""

from __future__ import annotations

# Formal first name → nicknames people really go by (the noise a CRM picks up).
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Robert": ("Bob", "Rob", "Bobby"),
    "William": ("Bill", "Will", "Billy"),
    "Elizabeth": ("Liz", "Beth", "Lizzie"),
    "Katherine": ("Kate", "Katie", "Kathy"),
    "Michael": ("Mike", "Mikey"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "Richard": ("Rick", "Dick", "Rich"),
    "Thomas": ("Tom", "Tommy"),
    "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",),
    "Anthony": ("Tony",),
    "Joseph": ("Joe", "Joey"),
    "Jonathan": ("Jon",),
    "Nicholas": ("Nick",),
    "Benjamin": ("Ben",),
    "Alexander": ("Alex",),
    "Andrew": ("Andy", "Drew"),
    "Edward": ("Ed", "Ted", "Eddie"),
    "Samuel": ("Sam",),
    "Steven": ("Steve",),
    "Timothy": ("Tim",),
    "Gregory": ("Greg",),
    "Patrick": ("Pat",),
    "Charles": ("Charlie", "Chuck"),
    "Jennifer": ("Jen", "Jenny"),
    "Jessica": ("Jess",),
    "Margaret": ("Maggie", "Peggy", "Meg"),
    "Rebecca": ("Becky", "Becca"),
    "Victoria": ("Vicky", "Tori"),
    "Alexandra": ("Alex", "Lexi"),
    "Samantha": ("Sam",),
    "Patricia": ("Pat", "Trish", "Patty"),
    "Susan": ("Sue", "Susie"),
    "Deborah": ("Deb", "Debbie"),
    "Christine": ("Chris", "Chrissy"),
    "Kimberly": ("Kim",),
    "Jacqueline": ("Jackie",),
    "Abigail": ("Abby",),
    "Stephanie": ("Steph",),
    "Cynthia": ("Cindy",),
    "Pamela": ("Pam",),
    "Theodore": ("Ted", "Teddy", "Theo"),
    "Frederick": ("Fred", "Freddie"),
    "Lawrence": ("Larry",),
    "Kenneth": ("Ken", "Kenny"),
    "Ronald": ("Ron",),
    "Donald": ("Don",),
    "Raymond": ("Ray",),
    "Zachary": ("Zach",),
}

# First names without a usual nickname.
OTHER_FIRST_NAMES: tuple[str, ...] = (
    "Aisha", "Amara", "Ana", "Anna", "Arjun", "Ava", "Brian", "Camila", "Carlos", "Chen",
    "Chloe", "Claire", "David", "Diego", "Elena", "Emily", "Emma", "Ethan", "Fatima",
    "Grace", "Hannah", "Hiroshi", "Ines", "Isabel", "Ivan", "Jack", "Jasmine", "Jose",
    "Julia", "Kevin", "Laura", "Leah", "Lena", "Liam", "Lucas", "Lucia", "Maria", "Mark",
    "Maya", "Mei", "Mohammed", "Nadia", "Noah", "Olivia", "Omar", "Paul", "Priya", "Rachel",
    "Rahul", "Ryan", "Sara", "Sean", "Sofia", "Sophie", "Tara", "Wei", "Yuki", "Zoe",
    "Aaron", "Adam", "Brandon", "Derek", "Eric", "Gavin", "Henry", "Jason", "Justin",
    "Kyle", "Laurent", "Marco", "Nathan", "Oscar", "Pablo", "Ravi", "Simon", "Tobias",
    "Victor", "Wesley", "Amy", "Beatriz", "Carmen", "Diana", "Eva", "Fiona", "Gemma",
    "Helen", "Irene", "Karen", "Linda", "Monica", "Nina", "Paula", "Ruth", "Sandra",
    "Tanya", "Ursula", "Vanessa", "Wendy",
)  # fmt: skip

# Last names: capitalised so that title-casing leaves them unchanged.
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White",
    "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green",
    "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter",
    "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards",
    "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers",
    "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly",
    "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez",
    "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell",
    "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson",
    "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson",
    "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West",
    "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar",
    "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez",
    "Schmidt", "Weber", "Fischer", "Wagner", "Becker", "Schulz", "Hoffmann", "Dubois",
    "Laurent", "Bernard", "Moreau", "Lefebvre", "Jansen", "Visser", "Bakker", "Smit",
    "Singh", "Kumar", "Sharma", "Gupta", "Chen", "Wang", "Zhang", "Liu", "Tanaka", "Sato",
    "Suzuki", "Nakamura", "Kowalski", "Novak", "Ivanova", "Petrov", "Larsen", "Nielsen",
    "Andersson", "Johansson", "Okafor", "Mensah", "Haddad", "Khan", "Ali", "Rossi",
    "Russo", "Ferrari", "Costa", "Silva", "Santos", "Oliveira", "Pereira",
)  # fmt: skip

# Company name parts: "<lead><tail>" fused (Brightwave) or "<lead> <noun>" (Blue Harbor Logistics).
NAME_LEADS: tuple[str, ...] = (
    "Acme", "Apex", "Arbor", "Atlas", "Aurora", "Beacon", "Birch", "Blue", "Bolt", "Bright",
    "Cascade", "Cedar", "Clear", "Cloud", "Cobalt", "Copper", "Core", "Crest", "Crimson",
    "Delta", "Echo", "Ember", "Evergreen", "Falcon", "Fern", "Flux", "Forge", "Frontier",
    "Glacier", "Golden", "Granite", "Harbor", "Helix", "Horizon", "Indigo", "Iron",
    "Juniper", "Keystone", "Lantern", "Laurel", "Lumen", "Maple", "Meridian", "Nimbus",
    "North", "Nova", "Oak", "Onyx", "Orbit", "Pacific", "Peak", "Pine", "Pioneer", "Pixel",
    "Prism", "Quantum", "Quartz", "Radiant", "Raven", "Redwood", "Ridge", "River", "Rocket",
    "Sage", "Sapphire", "Signal", "Silver", "Sky", "Solar", "Spark", "Spruce", "Stellar",
    "Stone", "Summit", "Swift", "Terra", "Tidal", "Timber", "Titan", "True", "Union",
    "Vanguard", "Vector", "Velvet", "Vertex", "Vista", "Willow", "Wind", "Zenith", "Zephyr",
)  # fmt: skip
NAME_TAILS: tuple[str, ...] = (
    "wave", "point", "stack", "works", "line", "field", "bridge", "gate", "path", "light",
    "loop", "mark", "base", "labs", "scale", "shift", "sphere", "stream", "view", "wise",
    "ware", "ly", "io", "hub", "craft", "forge", "grid", "leaf", "mind", "nest", "port",
    "rise", "sight", "spring", "star", "tide", "track", "vault", "way", "yard",
)  # fmt: skip
# Industry → nouns that read naturally after a lead word ("Harbor Analytics").
INDUSTRY_NOUNS: dict[str, tuple[str, ...]] = {
    "software": ("Software", "Systems", "Analytics", "Technologies", "Digital", "Data"),
    "financial_services": ("Capital", "Financial", "Partners", "Advisors", "Payments"),
    "banking": ("Bank", "Bancorp", "Savings", "Trust"),
    "healthcare": ("Health", "Medical", "Care", "Clinics", "Diagnostics"),
    "retail": ("Retail", "Outfitters", "Market", "Goods", "Stores"),
    "manufacturing": ("Manufacturing", "Industries", "Machinery", "Components", "Fabrication"),
    "education": ("Learning", "Academy", "Education", "Institute"),
    "telecommunications": ("Telecom", "Networks", "Communications", "Wireless"),
    "media": ("Media", "Studios", "Publishing", "Broadcasting"),
    "energy": ("Energy", "Power", "Renewables", "Utilities"),
    "insurance": ("Insurance", "Assurance", "Mutual", "Underwriters"),
    "consulting": ("Consulting", "Advisory", "Group", "Associates"),
    "transportation": ("Logistics", "Freight", "Transport", "Shipping"),
    "hospitality": ("Hotels", "Hospitality", "Resorts", "Dining"),
    "biotechnology": ("Bio", "Therapeutics", "Biosciences", "Genomics"),
}
# Legal suffixes per country: (canonical suffix, noisy spellings a CRM picks up).
LEGAL_SUFFIXES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "US": (
        ("Inc.", ("Inc", ", Inc.", "Incorporated", "INC")),
        ("LLC", ("L.L.C.", ", LLC", "Llc")),
        ("Corp.", ("Corporation", "Corp", ", Corp.")),
        ("Co.", ("Company", "Co")),
    ),
    "CA": (("Inc.", ("Inc", "Incorporated")), ("Ltd.", ("Limited", "Ltd"))),
    "GB": (("Ltd", ("Limited", "Ltd.", "LTD")), ("plc", ("PLC", "Plc"))),
    "DE": (("GmbH", ("Gmbh", "G.m.b.H.")), ("AG", ("A.G.", "Aktiengesellschaft"))),
    "FR": (("SAS", ("S.A.S.", "Sas")), ("SA", ("S.A.",))),
    "NL": (("B.V.", ("BV", "B.V")), ("N.V.", ("NV",))),
    "AU": (("Pty Ltd", ("Pty. Ltd.", "PTY LTD", "Proprietary Limited")),),
}

# Top-level domains per country (weighted by repetition).
TLDS: dict[str, tuple[str, ...]] = {
    "US": (".com", ".com", ".com", ".com", ".io", ".co", ".ai", ".net"),
    "CA": (".ca", ".com", ".com", ".io"),
    "GB": (".co.uk", ".co.uk", ".com", ".io"),
    "DE": (".de", ".de", ".com", ".io"),
    "FR": (".fr", ".fr", ".com"),
    "NL": (".nl", ".nl", ".com", ".io"),
    "AU": (".com.au", ".com.au", ".com", ".io"),
}
# Extra host names a website field sometimes carries instead of the bare domain.
WEB_SUBDOMAINS: tuple[str, ...] = ("app", "go", "en", "corp", "info")

FREE_MAIL: tuple[str, ...] = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com")

# Country → (weight, display names a CRM may hold: ISO code first, then the spellings).
COUNTRIES: dict[str, tuple[int, tuple[str, ...]]] = {
    "US": (70, ("US", "United States", "USA", "United States of America", "U.S.")),
    "CA": (6, ("CA", "Canada")),
    "GB": (9, ("GB", "United Kingdom", "UK", "Great Britain", "England")),
    "DE": (6, ("DE", "Germany", "Deutschland")),
    "FR": (3, ("FR", "France")),
    "NL": (3, ("NL", "Netherlands", "The Netherlands", "Holland")),
    "AU": (3, ("AU", "Australia")),
}
CURRENCY: dict[str, str] = {
    "US": "USD", "CA": "CAD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "AU": "AUD",
}  # fmt: skip
COUNTRY_CALLING_CODE: dict[str, str] = {
    "US": "1", "CA": "1", "GB": "44", "DE": "49", "FR": "33", "NL": "31", "AU": "61",
}  # fmt: skip

# City rows: (country, city, state/region, postal code prefix, area code, subscriber
# digits, allowed first subscriber digits). Together they make a national number that
# phonenumbers accepts as valid (checked in the tests); US numbers avoid the 555 exchange.
CITIES: tuple[tuple[str, str, str, str, str, int, str], ...] = (
    ("US", "San Francisco", "CA", "941", "415", 7, "2346789"),
    ("US", "Oakland", "CA", "946", "510", 7, "2346789"),
    ("US", "San Jose", "CA", "951", "408", 7, "2346789"),
    ("US", "Los Angeles", "CA", "900", "213", 7, "2346789"),
    ("US", "San Diego", "CA", "921", "619", 7, "2346789"),
    ("US", "Seattle", "WA", "981", "206", 7, "2346789"),
    ("US", "Portland", "OR", "972", "503", 7, "2346789"),
    ("US", "Denver", "CO", "802", "303", 7, "2346789"),
    ("US", "Austin", "TX", "787", "512", 7, "2346789"),
    ("US", "Dallas", "TX", "752", "214", 7, "2346789"),
    ("US", "Houston", "TX", "770", "713", 7, "2346789"),
    ("US", "Phoenix", "AZ", "850", "602", 7, "2346789"),
    ("US", "Chicago", "IL", "606", "312", 7, "2346789"),
    ("US", "Minneapolis", "MN", "554", "612", 7, "2346789"),
    ("US", "Detroit", "MI", "482", "313", 7, "2346789"),
    ("US", "Atlanta", "GA", "303", "404", 7, "2346789"),
    ("US", "Miami", "FL", "331", "305", 7, "2346789"),
    ("US", "Charlotte", "NC", "282", "704", 7, "2346789"),
    ("US", "Raleigh", "NC", "276", "919", 7, "2346789"),
    ("US", "Nashville", "TN", "372", "615", 7, "2346789"),
    ("US", "New York", "NY", "100", "212", 7, "2346789"),
    ("US", "Brooklyn", "NY", "112", "718", 7, "2346789"),
    ("US", "Boston", "MA", "021", "617", 7, "2346789"),
    ("US", "Cambridge", "MA", "021", "857", 7, "2346789"),
    ("US", "Philadelphia", "PA", "191", "215", 7, "2346789"),
    ("US", "Pittsburgh", "PA", "152", "412", 7, "2346789"),
    ("US", "Washington", "DC", "200", "202", 7, "2346789"),
    ("US", "Baltimore", "MD", "212", "410", 7, "2346789"),
    ("US", "Salt Lake City", "UT", "841", "801", 7, "2346789"),
    ("US", "Las Vegas", "NV", "891", "702", 7, "2346789"),
    ("US", "Columbus", "OH", "432", "614", 7, "2346789"),
    ("US", "Indianapolis", "IN", "462", "317", 7, "2346789"),
    ("US", "St. Louis", "MO", "631", "314", 7, "2346789"),
    ("US", "Kansas City", "MO", "641", "816", 7, "2346789"),
    ("CA", "Toronto", "ON", "M5V", "416", 7, "2346789"),
    ("CA", "Vancouver", "BC", "V6B", "604", 7, "2346789"),
    ("CA", "Montreal", "QC", "H2X", "514", 7, "2346789"),
    ("GB", "London", "England", "EC1A", "20", 8, "3478"),
    ("GB", "Manchester", "England", "M1", "161", 7, "2345678"),
    ("GB", "Edinburgh", "Scotland", "EH1", "131", 7, "2345678"),
    ("DE", "Berlin", "Berlin", "101", "30", 8, "2345678"),
    ("DE", "Munich", "Bavaria", "803", "89", 8, "2345678"),
    ("DE", "Hamburg", "Hamburg", "203", "40", 8, "2345678"),
    ("FR", "Paris", "Ile-de-France", "750", "1", 8, "2345678"),
    ("FR", "Lyon", "Auvergne-Rhone-Alpes", "690", "4", 8, "2345678"),
    ("NL", "Amsterdam", "North Holland", "101", "20", 7, "2345678"),
    ("NL", "Rotterdam", "South Holland", "301", "10", 7, "2345678"),
    ("AU", "Sydney", "NSW", "200", "2", 8, "26789"),
    ("AU", "Melbourne", "VIC", "300", "3", 8, "23589"),
)

STREET_NAMES: tuple[str, ...] = (
    "Main", "Market", "Mission", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington",
    "Lake", "Hill", "Park", "River", "Broad", "High", "Church", "Mill", "Spring", "Union",
    "Harbor", "Sunset", "Highland", "Madison", "Franklin", "Jefferson", "Lincoln",
)  # fmt: skip
STREET_TYPES: tuple[str, ...] = ("St", "Ave", "Blvd", "Rd", "Way", "Dr", "Lane", "Street", "Avenue")

# Job titles with a seniority weight (titles change over time: the conflict source).
TITLES: tuple[str, ...] = (
    "CEO", "CTO", "CFO", "COO", "Chief Revenue Officer", "VP of Sales", "VP of Marketing",
    "VP of Engineering", "VP Customer Success", "Head of Revenue Operations",
    "Director of Sales", "Director of Marketing", "Director of IT", "Director of Operations",
    "Sales Manager", "Marketing Manager", "Product Manager", "Engineering Manager",
    "Customer Success Manager", "Account Executive", "Sales Development Representative",
    "Revenue Operations Manager", "Marketing Operations Specialist", "Software Engineer",
    "Senior Software Engineer", "Data Analyst", "Business Analyst", "Operations Manager",
    "IT Administrator", "Procurement Manager", "Finance Manager", "Controller",
    "Office Manager", "HR Director", "Head of Growth", "Solutions Architect",
)  # fmt: skip

# Sales reps (owners): same people in every system, identified by email.
REP_NAMES: tuple[tuple[str, str], ...] = (
    ("Avery", "Collins"), ("Jordan", "Blake"), ("Morgan", "Reyes"), ("Taylor", "Quinn"),
    ("Casey", "Monroe"), ("Riley", "Chen"), ("Jamie", "Fox"), ("Drew", "Patel"),
    ("Cameron", "Diaz"), ("Skyler", "Nash"), ("Parker", "Lowe"), ("Quinn", "Harper"),
    ("Reese", "Walsh"), ("Rowan", "Stone"), ("Sage", "Whitman"), ("Emerson", "Grant"),
    ("Finley", "Park"), ("Hayden", "Cross"), ("Logan", "Pierce"), ("Kendall", "Shaw"),
)  # fmt: skip

PLANHAT_PHASES: tuple[str, ...] = ("Onboarding", "Adoption", "Expansion", "Renewal", "Mature")
HUBSPOT_LEAD_STATUS: tuple[str, ...] = (
    "NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT",
    "CONNECTED", "BAD_TIMING",
)  # fmt: skip
SALESFORCE_LEAD_STATUS: tuple[str, ...] = (
    "Open - Not Contacted", "Working - Contacted", "Closed - Not Converted",
)
OPPORTUNITY_SUFFIXES: tuple[str, ...] = (
    "New Business", "Expansion", "Renewal", "Upsell", "Platform Deal", "Pilot",
    "Enterprise Agreement", "Add-on Seats", "Annual Contract", "Services",
)  # fmt: skip
CONTACT_ROLES: tuple[str, ...] = (
    "Decision Maker", "Economic Buyer", "Technical Buyer", "Evaluator", "Influencer",
    "Business User", "Executive Sponsor",
)  # fmt: skip

# NANP area codes no carrier has been assigned (yet): numbers on them are *possible*
# (right length, right shape) but phonenumbers does not call them *valid*. Real CRM
# data holds many such numbers (typed by hand, test lines, numbers from before a
# split); the "real" noise profile gives some people and companies one. Checked in
# tests/sandbox/test_generator.py.
UNASSIGNED_NANP_AREA_CODES: tuple[str, ...] = (
    "823", "237", "238", "277", "288", "328", "338", "356", "357", "358", "359", "366",
    "378", "388", "422", "427", "433", "462", "477", "488", "644", "655", "677", "688",
    "722", "733", "744", "755", "766", "788", "922", "933", "944", "955", "966", "977",
    "988",
)  # fmt: skip
# How a phone extension is typed after the number.
PHONE_EXTENSIONS: tuple[str, ...] = (" x{n}", " ext. {n}", " ext {n}", " #{n}", " Ext.{n}")
# Regions a subsidiary is named after ("Vanguardmark UK", "Lantern Bio Europe").
SUBSIDIARY_REGIONS: dict[str, tuple[str, ...]] = {
    "US": ("US", "Americas", "North America", "USA"),
    "CA": ("Canada",),
    "GB": ("UK", "Europe", "EMEA"),
    "DE": ("Deutschland", "Germany", "DACH"),
    "FR": ("France",),
    "NL": ("Nederland", "Benelux"),
    "AU": ("Australia", "APAC"),
}
# Syllables of invented brand names ("Zenora", "Calix Health") for when the word-part
# names above run out: with 62 syllables, two or three of them and an ending, millions
# of distinct names, so a million companies never have to share one.
NAME_SYLLABLES: tuple[str, ...] = (
    "al", "an", "ar", "as", "be", "bo", "ca", "ce", "co", "da", "de", "di", "do", "el",
    "en", "er", "fa", "fi", "ga", "ge", "ha", "in", "ka", "ko", "la", "le", "li", "lo",
    "lu", "ma", "me", "mi", "mo", "na", "ne", "no", "nu", "or", "pa", "pe", "ra", "re",
    "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti", "to", "va", "ve", "vi", "vo",
    "xa", "ya", "za", "ze", "zo", "qua",
)  # fmt: skip
NAME_ENDINGS: tuple[str, ...] = ("", "n", "x", "s", "r", "l", "ta", "ra", "io", "ia", "on", "ix")
