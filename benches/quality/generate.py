#!/usr/bin/env python3
"""Synthetic conversations and dedup pairs for memgate's retrieval-quality benchmark.

Writes data/conversations.json (users, their chat turns with the facts an extraction model
would keep, and questions labelled with the turns and facts that answer them) and
data/dedup_pairs.json (fact pairs for choosing the cosine threshold at which a new fact is
merged into a stored one).

Standard library only and deterministic: one random.Random(SEED), pools are lists, sets are
only ever used for membership (their iteration order follows PYTHONHASHSEED), output keys are
written in insertion order. Re-running must reproduce the committed files byte for byte.

    python3 benches/quality/generate.py            # writes data/, prints stats
    python3 benches/quality/generate.py --check    # regenerates in memory, diffs the files
"""

import argparse
import json
import os
import random
import re
import sys

SEED = 20261201
GENERATOR = "benches/quality/generate.py"
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
N_USERS = 40

# ---------------------------------------------------------------------------------------------
# memgate's own heuristics, mirrored so the generator can prove that every fact-bearing
# sentence survives the fallback extractor (src/memory/declarative.rs) and that keyword-style
# questions really take the keyword path (src/memory/query.rs). Keep in step with those files.

INTERROGATIVES = [
    "what", "who", "whom", "whose", "where", "when", "why", "how", "which", "do", "does", "did",
    "is", "are", "was", "were", "can", "could", "should", "would", "will", "shall", "may",
]
NOT_A_STATEMENT = [
    "remind", "tell", "give", "show", "write", "explain", "describe", "summarize", "summarise",
    "list", "please", "help", "make", "create", "generate", "translate", "hi", "hello", "hey",
    "thanks", "thank", "ok", "okay",
]
QUESTION_OPENERS = [
    "have", "has", "had", "tell", "remind", "explain", "describe", "recall", "summarize",
    "summarise", "list",
]


def _first_word(sentence):
    word = sentence.split(" ")[0] if sentence else ""
    return re.sub(r"^[^\w]+|[^\w]+$", "", word).lower()


def declarative_sentences(text):
    out = []

    def consider(piece, is_question):
        piece = " ".join(piece.split())
        if is_question or not piece:
            return
        first = _first_word(piece)
        if first in INTERROGATIVES or first in NOT_A_STATEMENT or len(piece.split(" ")) < 3:
            return
        if piece not in out:
            out.append(piece)

    start = 0
    for i, c in enumerate(text):
        if c in ".!?\n":
            consider(text[start:i], c == "?")
            start = i + 1
    consider(text[start:], False)
    return out


def classified_as_keywords(query):
    q = query.strip()
    if q.endswith("?"):
        return False
    words = [w for w in re.split(r"[^\w]+", q) if w]
    if words and (words[0].lower() in INTERROGATIVES or words[0].lower() in QUESTION_OPENERS):
        return False
    return len(words) < 6


def sentences(text):
    return [s for s in re.split(r"[.!?]+", text) if s.strip()]


# ---------------------------------------------------------------------------------------------
# Vocabulary. Broad on purpose: proper nouns should be distinctive within a user, and the
# forty users should not all talk about the same beagle.

FEMALE = [
    "Ana", "Priya", "Sofia", "Deborah", "Amara", "Ingrid", "Fatima", "Noor", "Chiara", "Esme",
    "Greta", "Isla", "Lena", "Nadia", "Paloma", "Rosa", "Talia", "Vera", "Wen", "Ximena", "Zara",
    "Aiko", "Camille", "Elif", "Hana", "Ines", "Kavya", "Mira", "Odile", "Rania", "Thandiwe",
    "Uma", "Wanjiru", "Yara", "Zeynep", "Anouk", "Carmen", "Freya", "Hedda", "Kasia", "Maren",
    "Oksana", "Pilar", "Saoirse", "Ulla", "Valentina", "Xiu", "Zofia", "Beatriz", "Dalia",
    "Fiona", "Harriet", "Ilse", "Keiko", "Lucia", "Nora", "Petra", "Sanne", "Ursula", "Zainab",
    "Bronwyn", "Delphine", "Fleur", "Henrike", "Jolene", "Liesel", "Marisol", "Niamh", "Orla",
    "Signe", "Willa", "Yuki", "Astrid", "Celeste", "Dagny", "Farah", "Giulia", "Ifeoma", "Juno",
    "Leilani", "Magda", "Nkechi", "Ottilie", "Rukmini", "Sunniva", "Tova", "Imogen", "Marta",
    "Solveig", "Agnieszka", "Bettina", "Constanza", "Dorota", "Eleni", "Guadalupe", "Halima",
]
MALE = [
    "Tomás", "Jonas", "Ravi", "Leo", "Kenji", "Mateo", "Olu", "Hiro", "Bjorn", "Dmitri", "Farid",
    "Hamid", "Jules", "Kofi", "Malik", "Oren", "Quentin", "Sven", "Umar", "Yusuf", "Bilal",
    "Dario", "Felix", "Gio", "Jakob", "Luca", "Nikhil", "Pavel", "Soren", "Viktor", "Bram",
    "Desmond", "Emeka", "Gaspard", "Imran", "Jorge", "Lorenzo", "Nico", "Rafael", "Teodor",
    "Wiktor", "Yohannes", "Arjun", "Cormac", "Eitan", "Goran", "Jasper", "Mehmet", "Osman",
    "Ronan", "Tariq", "Vikram", "Yannick", "Alejandro", "Cyrus", "Emil", "Gideon", "Ivo",
    "Karim", "Piet", "Rohan", "Tobias", "Vasco", "Zoltan", "Anders", "Bastien", "Caio", "Dev",
    "Elias", "Fionn", "Hassan", "Idris", "Joaquin", "Kwame", "Lars", "Marek", "Nasser", "Otto",
    "Rasmus", "Santiago", "Thiago", "Wolfgang", "Aleksander", "Benedikt", "Cillian", "Dawit",
    "Endre", "Florin", "Gunnar", "Horatio", "Ignacio", "Jovan", "Kasimir", "Lukas", "Mikkel",
]
PET_NAMES = [
    "Max", "Pepper", "Luna", "Juniper", "Ziggy", "Bruno", "Rocket", "Pixel", "Gizmo", "Sprocket",
    "Cosmo", "Ollie", "Scout", "Bowie", "Frida", "Gatsby", "Yoda", "Ripley", "Zelda", "Banjo",
    "Nugget", "Suki", "Mochi", "Biscuit", "Waffles", "Pickles", "Noodle", "Dumpling", "Miso",
    "Clementine", "Marmalade", "Pretzel", "Chorizo", "Bagel", "Boba", "Otis", "Winnie", "Archie",
    "Rufus", "Bodhi", "Loki", "Nala", "Simba", "Pip", "Figaro", "Sherlock", "Moose", "Chewie",
    "Kiki", "Bonnie", "Tinkerbell", "Percy", "Hobbes", "Mabel", "Gnocchi", "Ptolemy", "Wasabi",
    "Crumpet", "Falafel", "Tiramisu",
]
DOG_BREEDS = [
    "beagle", "border collie", "golden retriever", "dachshund", "corgi", "labrador", "greyhound",
    "shiba inu", "poodle", "French bulldog", "whippet", "husky", "Jack Russell terrier",
    "Bernese mountain dog", "cocker spaniel", "vizsla", "samoyed", "Weimaraner", "basset hound",
    "Staffordshire bull terrier", "Australian shepherd", "schnauzer", "Dalmatian", "pug",
    "Newfoundland", "Rhodesian ridgeback", "lurcher",
]
CAT_BREEDS = [
    "Maine Coon", "Siamese", "ragdoll", "British Shorthair", "Bengal", "sphynx",
    "Norwegian Forest cat", "Persian", "Abyssinian", "Russian Blue", "Scottish Fold", "Burmese",
]
OTHER_PETS = [
    "rabbit", "tortoise", "cockatiel", "hamster", "bearded dragon", "axolotl", "ferret",
    "guinea pig", "corn snake", "chinchilla", "budgie", "leopard gecko",
]
CITIES = [
    "Lisbon", "Porto", "Berlin", "Hamburg", "Valencia", "Seville", "Lyon", "Marseille", "Ghent",
    "Antwerp", "Utrecht", "Rotterdam", "Copenhagen", "Aarhus", "Gothenburg", "Krakow",
    "Wroclaw", "Brno", "Ljubljana", "Zagreb", "Tallinn", "Riga", "Vilnius", "Bologna", "Turin",
    "Naples", "Edinburgh", "Glasgow", "Leeds", "Bristol", "Cork", "Galway", "Montreal",
    "Vancouver", "Calgary", "Halifax", "Portland", "Denver", "Austin", "Pittsburgh",
    "Minneapolis", "Savannah", "Tucson", "Guadalajara", "Medellin", "Bogota", "Montevideo",
    "Nairobi", "Accra", "Kigali", "Tunis", "Izmir", "Tbilisi", "Yerevan", "Amman", "Pune",
    "Bengaluru", "Jaipur", "Kochi", "Colombo", "Taipei", "Busan", "Osaka", "Sapporo", "Fukuoka",
    "Brisbane", "Hobart", "Adelaide", "Wellington", "Bergen", "Helsinki", "Salzburg",
    "Innsbruck", "Zurich", "Basel", "Lucerne", "Bordeaux", "Nantes", "Leipzig", "Dresden",
    "Graz", "Trieste", "Bilbao", "Malaga", "Thessaloniki", "Plovdiv", "Cluj", "Gdansk",
    "Uppsala", "Tampere", "Oulu", "Quebec City", "Winnipeg", "Asheville", "Boise", "Madison",
    "Rosario", "Arequipa", "Durban", "Mombasa", "Chennai", "Mysore", "Kaohsiung", "Sendai",
    "Nagoya", "Darwin", "Dunedin", "Nelson",
]
REGIONS = [
    "Kyoto", "Reykjavik", "Oaxaca", "Marrakech", "Cape Town", "Hanoi", "Chiang Mai", "Penang",
    "Cusco", "Valparaiso", "Istanbul", "Tromso", "the Dolomites", "Patagonia",
    "the Amalfi Coast", "Zanzibar", "Bali", "the Lofoten Islands", "the Scottish Highlands",
    "Sicily", "Crete", "the Azores", "Madeira", "Sardinia", "Yosemite", "Banff", "Kerala",
    "Tasmania", "the Faroe Islands", "Montenegro", "the Cotswolds", "Provence", "Tuscany",
    "Hokkaido", "Luang Prabang", "Hoi An", "Cartagena", "Mendoza", "Jordan", "Oman",
    "Georgia's wine country", "the Peloponnese", "Cappadocia", "Lake Bled", "Cinque Terre",
]
EMPLOYERS = [
    "Halvorsen Logistics", "Brightwater Analytics", "Quillfeather Press", "Tidewater Health",
    "Copperleaf Games", "Lumen Robotics", "Orchid Bank", "Greyhaven Insurance", "Pinecrest Labs",
    "Saltmarsh Studios", "Ironbark Engineering", "Bluefin Payments", "Marigold Foods",
    "Zephyr Mobility", "Driftwood Media", "Cobalt Pharma", "Harrowgate Energy", "Nimbleroot",
    "Fernhill Biotech", "Stonebridge Capital", "Larkspur Software", "Wavecrest Telecom",
    "Oakhaven Retail", "Redwillow Architects", "Silverline Rail", "Thistledown Toys",
    "Glasshouse Ventures", "Northgate Hospital", "Ambergrove Education", "Veridian Water",
    "Corvid Security", "Tessellate AI", "Kittering Aerospace", "Mossgiel Breweries",
    "Helix Diagnostics", "Paperkite Publishing", "Baywatch Marine Surveys", "Elderflower Hotels",
]
ROLES = [
    "data engineer", "product manager", "UX researcher", "backend developer",
    "site reliability engineer", "marketing lead", "financial analyst", "QA engineer",
    "technical writer", "sales engineer", "recruiter", "mechanical engineer",
    "supply chain analyst", "research scientist", "customer success manager",
    "frontend developer", "data scientist", "security engineer", "operations manager",
    "product designer", "machine learning engineer", "project coordinator", "solutions architect",
]
PROJECTS = [
    "Kestrel", "Bluebird", "Atlas", "Nimbus", "Halcyon", "Foxglove", "Sundial", "Tundra",
    "Meridian", "Cobblestone", "Lighthouse", "Quartz", "Pelican", "Osprey", "Marble", "Ember",
    "Granite", "Aurora", "Monsoon", "Beacon", "Orca", "Lantern", "Sparrow", "Zenith", "Tangram",
    "Driftwood", "Firefly", "Basalt", "Heron", "Magpie",
]
PROJECT_DESCS = [
    "a migration of our billing system to the cloud",
    "a new recommendation engine for the mobile app",
    "a rebuild of the internal search tool",
    "an inventory forecasting dashboard for the warehouses",
    "automating invoice processing for the finance team",
    "a redesign of the checkout flow",
    "a fraud detection pipeline for card payments",
    "the new onboarding flow for first-time customers",
    "a chatbot that answers questions from our support docs",
    "moving our data warehouse off the old Oracle servers",
    "a scheduling tool for the field technicians",
    "replacing the legacy customer portal",
]
TEAMMATE_FEATS = [
    # (as the user says it, as a clean fact says it, the answer term)
    ("built our deployment tooling", "built the team's deployment tooling", "deployment tooling"),
    ("wrote most of our test suite", "wrote most of the team's test suite", "test suite"),
    ("designed the new logo", "designed the new company logo", "logo"),
    ("set up our on-call rota", "set up the team's on-call rota", "on-call rota"),
    ("knows the billing code inside out", "knows the billing code inside out", "billing code"),
    ("organises the team quiz every month", "organises the monthly team quiz", "team quiz"),
]
JOBS = [
    "nurse", "architect", "firefighter", "pastry chef", "veterinarian", "lawyer", "pilot",
    "physiotherapist", "graphic designer", "electrician", "marine biologist", "journalist",
    "pharmacist", "carpenter", "dentist", "primary school teacher", "social worker",
    "photographer", "police officer", "midwife", "sommelier", "air traffic controller",
    "translator", "landscape gardener", "paramedic", "structural engineer", "tattoo artist",
    "librarian", "optician", "stage manager", "radio producer", "orthodontist",
]
RETIRED_JOBS = [
    "teacher", "postwoman", "bank manager", "nurse", "civil servant", "chemistry lecturer",
    "shop owner", "accountant", "headteacher", "bus driver", "florist", "hospital porter",
]
BIZ = [
    "bakery", "bike repair shop", "tattoo studio", "vintage clothing store", "coffee roastery",
    "yoga studio", "independent bookshop", "ceramics studio", "food truck", "record shop",
    "small vineyard", "dog grooming salon",
]
KID_INTERESTS = [
    "dinosaurs", "volcanoes", "trains", "space", "horses", "Lego", "sharks", "magic tricks",
    "drawing comics", "ballet", "origami", "insects",
]
SCHOOLS = [
    "Maple Grove Elementary", "Riverside Primary", "St Anne's Primary", "Oakfield Academy",
    "Hillcrest Elementary", "Brookside Montessori", "Willowbank Primary",
    "Larchwood International School", "Cedar Park Elementary", "Northfield Primary",
]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SEASONS = ["spring", "summer", "autumn", "winter"]
NUM_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen",
]
DECADE_WORDS = {50: "fifty", 60: "sixty", 65: "sixty-five", 70: "seventy", 75: "seventy-five", 80: "eighty"}

CLASSES = [
    # (hobby word used in questions, lesson noun, raw template, clean template)
    ("cello", "cello lessons", "I've been taking cello lessons with a teacher called {teacher} every {day}.",
     "User takes cello lessons with a teacher named {teacher} on {day}s."),
    ("piano", "piano lessons", "I started piano lessons again after twenty years, my teacher {teacher} comes over every {day}.",
     "User takes piano lessons with a teacher named {teacher} on {day}s."),
    ("saxophone", "saxophone lessons", "I'm learning the saxophone and have a lesson with {teacher} every {day}.",
     "User is learning the saxophone with a teacher named {teacher}, with lessons on {day}s."),
    ("ukulele", "ukulele lessons", "My ukulele lessons with {teacher} are on {day} evenings and I'm slowly getting the hang of it.",
     "User takes ukulele lessons with {teacher} on {day} evenings."),
    ("pottery", "pottery class", "I signed up for a pottery class at {venue} on {day} evenings. My first bowl came out completely lopsided.",
     "User takes a pottery class at {venue} on {day} evenings."),
    ("salsa", "salsa class", "I go to a salsa class at {venue} every {day}, and my dance partner is a retired sea captain.",
     "User takes a salsa class at {venue} on {day}s."),
    ("life drawing", "life drawing class", "I've joined a life drawing class at {venue}, it meets on {day} nights.",
     "User attends a life drawing class at {venue} on {day} nights."),
    ("woodworking", "woodworking course", "I'm doing an evening woodworking course at {venue} on {day}s, currently building a stool.",
     "User is taking a woodworking course at {venue} on {day}s."),
    ("yoga", "yoga class", "I do a yoga class at {venue} every {day} at 7pm, it's the only thing that fixes my back.",
     "User attends a yoga class at {venue} on {day}s at 7pm."),
    ("improv", "improv class", "I started an improv comedy class at {venue} on {day}s, which is terrifying and great.",
     "User takes an improv comedy class at {venue} on {day}s."),
    ("glassblowing", "glassblowing workshop", "I'm doing a glassblowing workshop at {venue} on {day} afternoons.",
     "User attends a glassblowing workshop at {venue} on {day} afternoons."),
    ("swing dancing", "swing dancing class", "My swing dancing class at {venue} is on {day} nights, I've been going since the summer.",
     "User attends a swing dancing class at {venue} on {day} nights."),
    ("calligraphy", "calligraphy course", "I'm taking a calligraphy course at {venue}, it runs on {day} mornings.",
     "User is taking a calligraphy course at {venue} on {day} mornings."),
    ("kickboxing", "kickboxing class", "I train at a kickboxing class at {venue} on {day}s, my coach is merciless.",
     "User takes a kickboxing class at {venue} on {day}s."),
]
VENUES = [
    "Clay Corner", "the Kiln Room", "Muddy Hands Studio", "the Old Tannery", "Studio Brava",
    "the Foundry Arts Centre", "Wicker Lane Studios", "the Lantern Rooms", "Hearth Workshop",
    "the Granary", "Copperpot Studios", "the Bellhouse", "Saltbox Arts", "Fieldhouse Studio",
]
FREE_HOBBIES = [
    # (key, raw, clean, paraphrase question, answer-slot name)
    ("bouldering", "I go bouldering at {gym} twice a week after work.",
     "User goes bouldering at {gym} twice a week.", "Where do I go climbing?", "gym"),
    ("birdwatching", "I've gotten really into birdwatching, and last month I finally spotted a {bird} at the reservoir.",
     "User is into birdwatching and spotted a {bird} last month.", "What rare bird did I manage to see?", "bird"),
    ("chess", "I play chess online most evenings, my rating just passed {rating}.",
     "User plays online chess and has a rating above {rating}.", "How good am I at chess these days?", "rating"),
    ("sourdough", "I bake sourdough every weekend, my starter is called {starter} and it's three years old.",
     "User bakes sourdough and their starter is named {starter}.", "What did I name the thing I use to make bread?", "starter"),
    ("beekeeping", "I keep two beehives in my garden, and this year they made about {kilos} kilos of honey.",
     "User keeps two beehives that produced about {kilos} kilos of honey this year.", "How much did my bees produce this year?", "kilos"),
    ("knitting", "I'm knitting a {item} for my neighbour's baby, it's my most ambitious project yet.",
     "User is knitting a {item} for their neighbour's baby.", "What am I making for the baby next door?", "item"),
    ("sea swimming", "I swim in the sea every morning, even in winter, with a group called the {swimgroup}.",
     "User swims in the sea every morning with a group called the {swimgroup}.", "Who do I go for my morning dips with?", "swimgroup"),
]
GYMS = ["Crux Climbing", "Boulder Barn", "the Arch", "Summit Hall", "Gravity Works", "Redpoint", "the Cave"]
BIRDS = ["hoopoe", "kingfisher", "bittern", "golden oriole", "red kite", "waxwing", "bee-eater", "snowy owl"]
STARTERS = ["Doughbi-Wan", "Bread Pitt", "Clint Yeastwood", "Gluten Morgen", "Sir Loafalot"]
KNIT_ITEMS = ["cable-knit blanket", "striped cardigan", "tiny fox hat", "patchwork quilt"]
SWIM_GROUPS = ["Blue Tits", "Salty Seadogs", "Polar Dippers", "Tuesday Selkies"]
RACE_PREFIX = [
    "Riverside", "Harbourfront", "Lakeshore", "Old Town", "Canal", "Hillside", "Midsummer",
    "Seaside", "Castle", "Forest", "Moorland", "Vineyard", "Cathedral", "Twilight", "Frosty",
    "Cherry Blossom", "Sunrise", "Brewery", "Valley", "Island", "Tulip", "Marina", "Heathland",
    "Glacier", "Cliffside",
]
# (distance words, verb, finish times, goal times)
DISTANCES = [
    ("5k", "run", ["24 minutes", "27 minutes", "29 minutes", "31 minutes"], ["25 minutes", "23 minutes"]),
    ("10k", "run", ["48 minutes", "52 minutes", "57 minutes", "1 hour 3 minutes"], ["50 minutes", "55 minutes"]),
    ("half marathon", "run", ["1 hour 47 minutes", "1 hour 58 minutes", "2 hours 9 minutes"], ["1 hour 45 minutes", "2 hours"]),
    ("marathon", "run", ["3 hours 58 minutes", "4 hours 21 minutes", "4 hours 40 minutes"], ["4 hours", "3 hours 45 minutes"]),
    ("sprint triathlon", "do", ["1 hour 21 minutes", "1 hour 34 minutes"], ["1 hour 20 minutes"]),
    ("25k trail race", "do", ["2 hours 44 minutes", "3 hours 5 minutes"], ["3 hours"]),
    ("100 km sportive", "ride", ["3 hours 50 minutes", "4 hours 15 minutes"], ["4 hours"]),
    ("open water swim", "do", ["1 hour 12 minutes", "58 minutes"], ["an hour"]),
]
# Only what almost any destination has, so no trip reads as geographically absurd.
HIGHLIGHTS = [
    "street food", "hiking trails", "museums", "night markets", "old bookshops", "jazz bars",
    "food markets", "sunsets", "bakeries", "coffee shops", "street art", "day trips",
    "local wine", "botanical gardens", "flea markets", "live music",
]
ALLERGENS = [
    ("peanuts", "peanut"), ("shellfish", "shellfish"), ("sesame", "sesame"),
    ("tree nuts", "tree nut"), ("eggs", "egg"), ("soy", "soy"), ("mustard", "mustard"),
    ("celery", "celery"),
]
DIETS = ["vegetarian", "vegan", "pescatarian"]
CUISINES = [
    "Ethiopian", "Sichuan", "Georgian", "Lebanese", "Korean", "Peruvian", "Keralan",
    "Vietnamese", "Basque", "Sicilian", "Persian", "Malaysian", "Filipino", "Oaxacan", "Uyghur",
]
RESTAURANTS = [
    "Bar Lobo", "Kin Khao", "Taberna Azul", "the Golden Lotus", "Mesa Verde", "Kantine Nord",
    "the Copper Pot", "Little Tbilisi", "Casa Arepa", "Bamboo Lane", "Cedar and Salt",
    "the Hungry Heron", "Noodle Theory", "Juniper Table",
]
DISLIKES = [
    "cilantro", "olives", "mushrooms", "blue cheese", "anchovies", "liquorice", "beetroot",
    "okra", "raisins", "capers", "fennel", "coconut",
]
LIKES = ["garlic", "smoked paprika", "lime", "miso", "chilli crisp", "tahini", "feta", "kimchi", "pesto", "harissa"]
CONDITIONS = [
    ("asthma", "I always carry an inhaler"), ("migraines", "bright screens can set me off"),
    ("hay fever", "spring is rough for me"), ("eczema", "I'm picky about soaps"),
    ("type 1 diabetes", "I keep an eye on my blood sugar all day"),
    ("tinnitus", "I wear earplugs in loud places"),
]
INJURIES = [("knee", "five-a-side football"), ("shoulder", "padel"), ("ankle", "basketball"),
            ("wrist", "volleyball"), ("lower back", "squash"), ("hamstring", "ultimate frisbee")]
APPOINTMENTS = [
    "dentist appointment", "eye test", "dermatologist appointment", "MRI scan", "blood test",
    "hearing test", "flu jab", "cardiology check-up",
]
SUPPLEMENTS = ["vitamin D", "magnesium", "iron tablets", "omega-3 capsules"]
ARTISTS = [
    "Khruangbin", "Hozier", "Phoebe Bridgers", "Arctic Monkeys", "Florence and the Machine",
    "Bon Iver", "Radiohead", "Lizzo", "Kendrick Lamar", "Tame Impala", "Sigur Ros", "Bonobo",
    "Nils Frahm", "Caribou", "Wet Leg", "Mitski", "Vampire Weekend", "Little Simz", "Arlo Parks",
    "The National", "Big Thief", "Alvvays", "Sampha", "Floating Points", "Four Tet",
    "Japanese Breakfast", "Angelique Kidjo", "Tinariwen", "Snarky Puppy", "Hiatus Kaiyote",
    "Fontaines DC", "Idles", "Jungle", "Rosalia", "Ezra Collective",
]
VENUES_MUSIC = [
    "the Fillmore", "Paradiso", "the Roundhouse", "Brixton Academy", "Red Rocks", "the Olympia",
    "Vega", "Tivoli", "Razzmatazz", "Melkweg", "the Barrowland", "the Ryman", "Columbiahalle",
    "the Apollo", "Sala Apolo", "Le Trianon",
]
CONFERENCES = [
    "RustConf", "PyCon", "KubeCon", "Web Summit", "DjangoCon", "GopherCon", "FOSDEM", "JSConf",
    "SREcon", "Data Council", "PostgresConf", "QCon", "DevOpsDays", "UXLondon", "Monktoberfest",
]
TALK_TOPICS = [
    "async runtimes", "testing legacy code", "observability on a budget", "data contracts",
    "accessible design systems", "feature flags", "mentoring junior engineers",
    "database migrations", "fuzzing parsers", "carbon-aware computing", "incident retrospectives",
]
MEETUP_TECH = ["Rust", "Python", "Kotlin", "data science", "Elixir", "Go", "Haskell", "Svelte"]
AUTHORS = ["Ocean Vuong", "Ali Smith", "Kazuo Ishiguro", "Bernardine Evaristo", "Ted Chiang", "Sally Rooney", "Min Jin Lee"]
BOOKSHOPS = ["Foyles", "Shakespeare and Company", "the Book Nook", "Powell's", "Daunt Books", "Libreria Acqua Alta"]
PREFERRED_LANGS = ["Python", "Go", "Rust", "TypeScript", "Ruby", "Kotlin", "Julia", "Elixir"]
OTHER_LANGS = ["JavaScript", "Java", "Perl", "PHP", "C++", "Bash"]
CARS = [
    ("Subaru", "Outback"), ("Kia", "EV6"), ("Toyota", "Corolla"), ("Volvo", "XC40"),
    ("Honda", "Civic"), ("Mazda", "MX-5"), ("Skoda", "Octavia"), ("Tesla", "Model 3"),
    ("Renault", "Zoe"), ("Hyundai", "Ioniq 5"), ("Fiat", "Panda"), ("Nissan", "Leaf"),
    ("Polestar", "2"), ("Peugeot", "208"), ("Jeep", "Wrangler"), ("Volkswagen", "Golf"),
    ("Dacia", "Duster"), ("Ford", "Transit camper van"),
]
BIKES = [("Brompton folding bike", "Brompton"), ("old steel road bike", "road bike"),
         ("cargo bike", "cargo bike"), ("electric bike", "electric bike"), ("fixie", "fixie")]
CAMERAS = ["Fujifilm X100V", "Ricoh GR III", "Leica M6", "Olympus OM-1", "Pentax K1000"]
SUBJECTS = [
    "mechanical engineering", "art history", "biochemistry", "economics", "linguistics",
    "civil engineering", "philosophy", "marine biology", "architecture", "computer science",
    "geography", "music composition", "physics", "anthropology",
]
ONLINE_SUBJECTS = ["data science", "urban planning", "public health", "psychology", "cybersecurity", "sustainable design"]
UNIS = [
    "the University of Leeds", "TU Delft", "McGill", "Trinity College Dublin",
    "the University of Porto", "ETH Zurich", "the University of Toronto", "KU Leuven",
    "the University of Edinburgh", "Uppsala University", "the University of Cape Town",
    "Monash", "Sciences Po", "the University of Bologna", "UC San Diego",
]
LANGS_NATIVE = ["Portuguese", "Polish", "Tamil", "Greek", "Tagalog", "Dutch", "Turkish", "Yoruba", "Catalan", "Hungarian", "Gujarati", "Swahili"]
LANGS_LEARN = ["Japanese", "Italian", "Korean", "Icelandic", "Spanish", "Mandarin", "German", "Finnish", "Arabic", "Welsh"]
LANG_APPS = ["Duolingo", "Babbel", "Busuu", "Memrise", "Pimsleur", "Drops"]
BOOKS = [
    "The Left Hand of Darkness", "Piranesi", "The Overstory", "Middlemarch", "Project Hail Mary",
    "Klara and the Sun", "The Name of the Rose", "Pachinko", "The Remains of the Day", "Circe",
    "Stoner", "Dune", "A Gentleman in Moscow", "Lonesome Dove", "The Master and Margarita",
    "Never Let Me Go", "Station Eleven", "The Dispossessed", "Anna Karenina", "Demon Copperhead",
]
SHOWS = [
    "Severance", "The Bear", "Slow Horses", "Shogun", "Fleabag", "Succession", "Borgen",
    "Detectorists", "Reservation Dogs", "Derry Girls", "The Expanse", "Taskmaster",
    "Only Murders in the Building", "Mare of Easttown", "Andor", "Bluey",
]
PODCASTS = [
    "Radiolab", "99% Invisible", "Hardcore History", "The Rest Is History", "Song Exploder",
    "No Such Thing As A Fish", "Darknet Diaries", "Planet Money", "Hidden Brain", "Decoder Ring",
]
PLANTS = ["tomatoes", "chillies", "strawberries", "runner beans", "courgettes", "lettuce", "radishes", "peas"]
SAVING_GOALS = [
    ("a deposit on a flat", "deposit"), ("a campervan", "campervan"),
    ("a sabbatical year", "sabbatical"), ("a new kitchen", "kitchen"),
    ("an electric car", "electric car"), ("a piano", "piano"),
]
VOLUNTEER = ["community food bank", "animal shelter", "library homework club", "repair cafe", "hospice charity shop"]

# ---------------------------------------------------------------------------------------------
# Filler: what users say to an assistant that is not about themselves. Questions and requests
# are dropped by memgate's heuristics; the declarative ones survive as noise items in the raw
# data shape, which is the point of having them.

FILLER = [
    "Thanks, that was helpful!", "Thank you so much.", "Perfect, thanks!", "Great, that works for me.",
    "Ok, got it.", "That makes sense.", "Sounds good.", "Hmm, interesting.", "Let me think about it.",
    "I'll give that a try.", "Not quite what I meant.", "That's a good point.",
    "Nice, I like that idea.", "Haha, fair enough.", "I'm not sure that's right.",
    "Actually, never mind.", "That's way too long.", "Much better, thanks.",
    "Can you suggest a good recipe for dinner?", "Write a haiku about autumn.",
    "Explain how compound interest works.", "Give me three ideas for a rainy Sunday.",
    "What's the capital of Australia?", "How many cups are in a litre?",
    "Translate 'see you tomorrow' into German.", "Summarize the plot of Hamlet in two sentences.",
    "Help me word a polite reminder email to a client.", "Can you make that shorter?",
    "Could you rewrite it in a friendlier tone?", "What's a good name for a book club?",
    "How do I remove a coffee stain from a shirt?", "Is it better to stretch before or after exercise?",
    "What's the difference between a latte and a flat white?", "How long should I boil an egg?",
    "Can you explain what a Roth IRA is?", "Why is the sky blue?",
    "What are some good icebreaker questions for a team meeting?",
    "Make a packing list for a weekend away.", "List five classic sci-fi films.",
    "How do I reverse a string in JavaScript?", "What does HTTP 418 mean?",
    "Can you check this sentence for grammar mistakes: 'their going to the shop'?",
    "Give me a quick stretching routine for my desk.", "Tell me a fun fact about octopuses.",
    "What's a good way to keep basil alive indoors?", "How do noise-cancelling headphones work?",
    "Suggest a few names for a fantasy football team.", "Could you draft a toast for a retirement party?",
    "Which is healthier, brown rice or quinoa?", "What time zone is Auckland in?",
    "Recommend a board game for four players.", "How do I politely decline a meeting?",
    "Create a simple weekly budget template.", "What should I ask at the end of a job interview?",
    "Explain the offside rule like I'm five.", "How do you pronounce 'quinoa'?",
    "Can you convert 350 Fahrenheit to Celsius?", "What's a good gift for someone who has everything?",
    "Write a limerick about a cat who hates Mondays.", "How do I center a div?",
    "That was helpful. Can you make it a bit shorter?", "Ok. Now do the same for the second paragraph.",
    "Hmm, that doesn't look right. Can you double-check the numbers?",
    "Good morning! Quick question for you.", "Hi again!", "Hello, hope you're doing well.",
    "Hey, me again.", "I have a random question.", "Just curious about something.",
    "It's been a long week.", "The weather is awful today.", "No rush on this one.",
    "I was wondering about this earlier.", "That's all for now, thanks.", "You're a lifesaver.",
    "Brilliant, exactly what I needed.", "I don't think that's quite it.", "Let's try a different approach.",
    "Go on.", "Interesting, I didn't know that.", "Fair point.", "Ha, love it.", "Yes please.",
    "No, the other one.", "Let me check and get back to you.", "I'll read through it later.",
    "Could you give me a couple more options?", "What would you recommend instead?",
    "Can you put that in a table?", "Shorter please.", "One more thing.",
    "Explain the difference between weather and climate.", "Help me plan a three course menu for six people.",
    "How do I get rid of fruit flies?", "What's the best way to learn touch typing?",
    "Give me a riddle.", "What's a polite way to ask a neighbour to turn the music down?",
    "Write a short bio for a conference website.", "How do I make a cold brew?",
    "Is it normal for a phone battery to get hot while charging?", "What year did the Berlin Wall fall?",
    "That's exactly the tone I was going for.", "I think the second version reads better.",
    "Maybe add a sentence about the deadline.", "Now make it sound less formal.",
    "This is getting complicated.", "Cool, thanks for the explanation.", "Okay, next question.",
    "Wait, I think I misread that.", "Right, that clears it up.",
]

# Wrapped around fact sentences so raw messages carry context and asks, as real ones do. The
# asks end in '?' so memgate drops them; the asides are declarative and become noise items.
ASKS = [
    "Could you keep that in mind?", "Anyway, can you help me with something?",
    "Just thought you should know.", "Anyway, back to my question.", "Does that make sense?",
    "Worth remembering for later.",
]
OPENERS = ["Oh, by the way, ", "Random thing, but ", "So, ", "For context, ", "Side note: ", "Just so you know, "]


# ---------------------------------------------------------------------------------------------
# Helpers.

GENERIC = {
    "the", "and", "of", "a", "an", "in", "on", "at", "to", "for", "with", "lane", "table",
    "university", "college", "studio", "studios", "house", "room", "rooms", "hall", "centre",
    "school", "primary", "elementary", "academy", "international", "project", "city", "old",
    "new", "little", "island", "islands", "coast", "lake", "bar", "park", "arts", "workshop",
}


def stems(value):
    out = []
    for w in re.split(r"[^\w]+", value.lower()):
        if len(w) < 3 or w in GENERIC:
            continue
        out.append(w[:-1] if w.endswith("s") and len(w) > 4 else w)
    return out


def art(word):
    vowel_sound = word[0].lower() in "aeiou" or word.split(" ")[0] in ("MRI", "FBI", "NHS")
    return ("an " if vowel_sound else "a ") + word


def pron(g):
    if g == "f":
        return {"he": "she", "him": "her", "his": "her", "He": "She", "His": "Her"}
    return {"he": "he", "him": "him", "his": "his", "He": "He", "His": "His"}


class User:
    """One user's world while it is being written: what they will say, in what order, and what
    will be asked."""

    def __init__(self, rng, uid):
        self.rng = rng
        self.uid = uid
        self.taken = set()  # membership only
        self.stmts = []
        self.seqs = []
        self.cands = []
        self.topic = None

    def choice(self, xs):
        return self.rng.choice(xs)

    def chance(self, p):
        return self.rng.random() < p

    def free(self, value):
        return not any(s in self.taken for s in stems(value))

    def pick(self, pool):
        """A value this user has not used yet in any role, so that an answer term points at one
        statement only (Lisbon is the home city or a trip, never both)."""
        options = [x for x in pool if self.free(x if isinstance(x, str) else x[0])]
        if not options:
            # Small pools (months, weekdays) can run out for a busy user; a repeat there only
            # makes an answer term less unique, never a question ambiguous.
            options = pool
        v = self.rng.choice(options)
        self.take(v if isinstance(v, str) else v[0])
        return v

    def take(self, value):
        for s in stems(value):
            self.taken.add(s)

    def name(self, g=None):
        g = g or self.choice("fm")
        return self.pick(FEMALE if g == "f" else MALE), g

    def say(self, text, facts):
        """A statement: one user message (or part of one) and the clean facts in it. Each fact
        is (tags, text); questions point at tags."""
        st = {"key": len(self.stmts), "topic": self.topic, "text": text,
              "facts": [(tags.split(), ft) for tags, ft in facts]}
        self.stmts.append(st)
        return st

    def order(self, *stmts, gap=1):
        self.seqs.append(([s["key"] for s in stmts], gap))

    def ask(self, style, text, tags, answers):
        self.cands.append({"topic": self.topic, "style": style, "text": text,
                           "tags": tags.split(), "answers": answers})


# ---------------------------------------------------------------------------------------------
# Topics. Each writes a user's statements on one subject, with the distractors, updates and
# restatements real conversations have, and the questions they can answer.

def t_pets(u):
    p = pron(u.choice("fm"))
    dog = u.pick(PET_NAMES)
    breed = u.pick(DOG_BREEDS)
    month, year = u.choice(MONTHS), u.pick([str(y) for y in range(2015, 2025)])
    v = u.rng.randrange(4)
    if v == 0:
        intro = u.say(f"We finally got a dog last weekend! {p['He']} is {art(breed)} and we named {p['him']} {dog}.",
                      [("dog_name dog_breed", f"User got {art(breed)} named {dog}.")])
    elif v == 1:
        intro = u.say(f"Big news, we adopted {art(breed)} puppy from the shelter. We named {p['him']} {dog}. {u.choice(['Any tips for crate training?', 'How often should a puppy go out at night?'])}",
                      [("dog_breed", f"User adopted {art(breed)} puppy from a shelter."), ("dog_name", f"User's dog is named {dog}.")])
    elif v == 2:
        intro = u.say(f"We've had our {breed} {dog} since {month} {year}. {p['He']} is the goofiest dog I've ever met.",
                      [("dog_name dog_breed", f"User has {art(breed)} named {dog}."), ("dog_since", f"User has had their dog {dog} since {month} {year}.")])
    else:
        intro = u.say(f"I have {art(breed)} called {dog} and {p['he']} is the love of my life. We got {p['him']} in {month} {year} from a breeder up north.",
                      [("dog_name dog_breed", f"User has {art(breed)} named {dog}."), ("dog_since", f"User got their dog {dog} in {month} {year}.")])
    u.ask("paraphrase", u.choice(["What's my dog called?", "What do we call our pup?"]), "dog_name", [dog])
    u.ask("keywords", f"{breed} name", "dog_name", [dog])
    u.ask("entity", f"What breed is {dog}?", "dog_breed", [breed])
    if v >= 2:
        u.ask("temporal", f"Since when have we had {dog}?", "dog_since", [year])

    species = u.choice(["cat", "cat", "other"])
    q = pron(u.choice("fm"))
    pet2 = u.pick(PET_NAMES)
    age = u.rng.randint(2, 12)
    if species == "cat":
        cb = u.pick(CAT_BREEDS)
        second = u.say(f"Our cat {pet2} is {art(cb)} and {q['he']} just turned {NUM_WORDS[age]}.",
                       [("pet2_name", f"User has {art(cb)} cat named {pet2}."), ("pet2_age", f"User's cat {pet2} is {NUM_WORDS[age]} years old.")])
        kind = "cat"
    else:
        kind = u.pick(OTHER_PETS)
        second = u.say(f"I also keep {art(kind)} named {pet2}, {q['he']} is {NUM_WORDS[age]} years old and has {q['his']} own corner of the living room.",
                       [("pet2_name", f"User has {art(kind)} named {pet2}."), ("pet2_age", f"User's {kind} {pet2} is {NUM_WORDS[age]} years old.")])
    u.ask("entity", f"How old is {pet2}?", "pet2_age", [NUM_WORDS[age]])
    u.ask("multi", u.choice(["What pets do I have?", "Which animals live with me?"]), "dog_name pet2_name", [dog, pet2])

    if u.chance(0.6):
        ev = u.rng.randrange(3)
        if ev == 0:
            u.take("chicken")
            later = u.say(f"Took {dog} to the vet this morning, turns out {p['he']} is allergic to chicken.",
                          [("dog_name dog_allergy", f"User's dog {dog} is allergic to chicken.")])
            u.ask("entity", f"What is {dog} allergic to?", "dog_allergy", ["chicken"])
        elif ev == 1:
            u.take("headphones")
            later = u.say(f"{dog} chewed through my new headphones yesterday. I'm not even mad, {p['he']} looked so proud.",
                          [("dog_name dog_chewed", f"User's dog {dog} chewed through User's new headphones.")])
            u.ask("paraphrase", "What did my dog destroy?", "dog_chewed", ["headphones"])
        else:
            u.take("agility")
            later = u.say(f"{dog} won a ribbon at {p['his']} first agility competition on Saturday!",
                          [("dog_name dog_agility", f"User's dog {dog} won a ribbon at an agility competition.")])
            u.ask("paraphrase", "How did my dog do at the obstacle course contest?", "dog_agility", ["ribbon"])
        u.order(intro, later)
    if u.chance(0.35):
        n = u.rng.randint(3, 9)
        again = u.say(f"{dog} turned {NUM_WORDS[n]} today, hard to believe my little {breed} is getting old.",
                      [("dog_name dog_breed dog_age", f"User's {breed} {dog} turned {NUM_WORDS[n]}.")])
        u.order(intro, again)


def t_siblings(u):
    sis, _ = u.name("f")
    bro, _ = u.name("m")
    c1, c2, c3 = u.pick(CITIES), u.pick(CITIES), u.pick(CITIES)
    j1, j2 = u.pick(JOBS), u.pick(JOBS)
    moved = u.chance(0.45)
    s = u.choice([
        f"My sister {sis} lives in {c1} and works as {art(j1)}.",
        f"My little sister {sis} is {art(j1)} in {c1}. She's the organised one in the family.",
        f"I'm flying out to see my sister {sis} in {c1} soon. She works as {art(j1)} there and never gets time off.",
    ])
    city_tag = "sis_old" if moved else "sis_city"
    sister = u.say(s, [("sis_name", f"User has a sister named {sis}."), (f"sis_name {city_tag}", f"User's sister {sis} lives in {c1}."),
                       ("sis_name sis_job", f"User's sister {sis} works as {art(j1)}.")])
    b = u.choice([
        f"My older brother {bro} is {art(j2)} based in {c2}.",
        f"My brother {bro} works as {art(j2)} in {c2}, and he has two kids.",
        f"My twin brother {bro} lives in {c2}. He's {art(j2)}, which still surprises everyone.",
    ])
    brother = u.say(b, [("bro_name bro_city", f"User's brother {bro} lives in {c2}."), ("bro_name bro_job", f"User's brother {bro} works as {art(j2)}.")])
    u.ask("paraphrase", "What does my brother do for a living?", "bro_job", [j2])
    u.ask("entity", f"What does {sis} do for work?", "sis_job", [j1])
    u.ask("entity", f"Where does {bro} live?", "bro_city", [c2])
    u.ask("keywords", u.choice(["brother job", "brother occupation"]), "bro_job", [j2])
    u.ask("multi", "What are my siblings' names?", "sis_name bro_name", [sis, bro])
    if moved:
        mv = u.say(u.choice([
            f"My sister {sis} just moved from {c1} to {c3} for a new job.",
            f"Update on my sister {sis}: she packed up and moved to {c3} last week. She says the rent is half what she paid before.",
        ]), [("sis_name sis_now", f"User's sister {sis} moved to {c3}.")])
        u.order(sister, mv, gap=2)
        u.ask("temporal", "Where does my sister live now?", "sis_now", [c3])
        u.ask("keywords", "sister new city", "sis_now", [c3])
    else:
        u.ask("paraphrase", "Which city is my sister based in?", "sis_city", [c1])


def t_partner(u):
    name, g = u.name()
    p = pron(g)
    yrs = u.rng.randint(2, 14)
    job = u.pick(JOBS)
    m, d = u.choice(MONTHS), u.rng.randint(1, 28)
    u.take(m)
    meet = u.choice(["a climbing gym", "a friend's barbecue", "a language exchange", "a music festival", "university", "a pub quiz"])
    together = u.say(u.choice([
        f"My partner {name} and I have been together for {NUM_WORDS[yrs]} years. We met at {meet}.",
        f"{name} and I met at {meet} {NUM_WORDS[yrs]} years ago and we've been together ever since.",
    ]), [("partner_name partner_years", f"User has been with their partner {name} for {NUM_WORDS[yrs]} years."),
         ("partner_name partner_met", f"User met their partner {name} at {meet}.")])
    work = u.say(f"{name} works as {art(job)}, so {p['his']} hours are all over the place.",
                 [("partner_name partner_job", f"User's partner {name} works as {art(job)}.")])
    anniv = u.say(f"Our anniversary is on {m} {d}, and I want to plan something special this year.",
                  [("anniv", f"User's anniversary with their partner is on {m} {d}.")])
    u.order(together, work, gap=0)
    u.ask("paraphrase", "How long have my partner and I been a couple?", "partner_years", [NUM_WORDS[yrs]])
    u.ask("paraphrase", "Where did my partner and I first cross paths?", "partner_met", [meet])
    u.ask("entity", f"What does {name} do for a living?", "partner_job", [job])
    u.ask("temporal", "When is our anniversary?", "anniv", [m])
    u.ask("keywords", "anniversary date", "anniv", [m])


def t_kids(u):
    k1, g1 = u.name()
    a1 = u.rng.randint(4, 12)
    interest = u.pick(KID_INTERESTS)
    role1 = "daughter" if g1 == "f" else "son"
    p1 = pron(g1)
    kid1 = u.say(f"My {role1} {k1} just turned {NUM_WORDS[a1]} and {p1['he']} is completely obsessed with {interest}.",
                 [("kid1 kid_age", f"User's {role1} {k1} is {NUM_WORDS[a1]} years old."), ("kid1 kid1_interest", f"User's {role1} {k1} loves {interest}.")])
    u.ask("entity", f"What is {k1} into these days?", "kid1_interest", [interest])
    if u.chance(0.7):
        k2, g2 = u.name()
        a2 = u.rng.randint(3, 11)
        while a2 == a1:
            a2 = u.rng.randint(3, 11)
        school = u.pick(SCHOOLS)
        role2 = "daughter" if g2 == "f" else "son"
        u.say(f"Our {'youngest' if a2 < a1 else 'eldest'}, {k2}, started at {school} this autumn. {pron(g2)['He']} is {NUM_WORDS[a2]} and already bossing the other kids around.",
              [("kid2 kid2_school", f"User's {role2} {k2} attends {school}."), ("kid2 kid_age", f"User's {role2} {k2} is {NUM_WORDS[a2]} years old.")])
        u.ask("multi", "How old are my kids?", "kid_age", [NUM_WORDS[a1], NUM_WORDS[a2]])
        u.ask("multi", "What are my children's names?", "kid1 kid2", [k1, k2])
        u.ask("paraphrase", f"Where does my {'boy' if g2 == 'm' else 'girl'} {k2} go during the day?", "kid2_school", [school])
        u.ask("keywords", f"{k2} school", "kid2_school", [school])


def t_work(u):
    emp, role = u.pick(EMPLOYERS), u.pick(ROLES)
    yrs = u.rng.randint(2, 9)
    changed = u.chance(0.5)
    tag = "emp_old" if changed else "emp_now"
    intro = u.say(u.choice([
        f"I work as {art(role)} at {emp}.",
        f"I'm {art(role)} at {emp}, been there about {NUM_WORDS[yrs]} years now.",
        f"For context, I'm {art(role)} and I work at {emp}. It's a pretty big company.",
    ]), [(f"{tag} role", f"User works as {art(role)} at {emp}.")])
    proj, desc = u.pick(PROJECTS), u.choice(PROJECT_DESCS)
    project = u.say(u.choice([
        f"Right now I'm leading Project {proj}, which is {desc}.",
        f"My team's main project this quarter is called {proj}. It's {desc}, and the deadline is tight.",
    ]), [("proj", f"User is working on Project {proj}, which is {desc.replace('our ', 'the ')}.")])
    mgr, mg = u.name()
    mp = pron(mg)
    manager = u.say(u.choice([
        f"My manager {mgr} is really supportive, {mp['he']} lets us work pretty independently.",
        f"I report to {mgr}, who joined the company last year. {mp['He']} is great at shielding us from meetings.",
    ]), [("mgr", f"User's manager is {mgr}.")])
    mate, tg = u.name()
    feat, feat_clean, feat_key = u.choice(TEAMMATE_FEATS)
    u.take(feat_key)
    u.say(f"{mate} from my team {feat}, {pron(tg)['he']} is brilliant.", [("mate", f"User's teammate {mate} {feat_clean}.")])
    u.ask("entity", f"What is Project {proj} about?", "proj", [desc.split("our ")[-1]])
    u.ask("keywords", f"{proj} project", "proj", [proj])
    u.ask("paraphrase", u.choice(["Who do I answer to at work?", "Who's my boss?"]), "mgr", [mgr])
    u.ask("entity", f"What is {mate} known for on my team?", "mate", [feat_key])
    if changed:
        emp2, role2 = u.pick(EMPLOYERS), u.pick(ROLES)
        offer = u.say(u.choice([
            f"I just accepted an offer from {emp2}! I'll be starting there as {art(role2)} next month.",
            f"Some news: I handed in my notice. I'm joining {emp2} as {art(role2)} in a few weeks.",
        ]), [("emp_now", f"User accepted a job at {emp2} as {art(role2)}.")])
        u.order(intro, offer, gap=2)
        if u.chance(0.6):
            first = u.say(f"First week at {emp2} done, everyone is really nice and the coffee is free.",
                          [("emp_now", f"User has started working at {emp2}.")])
            u.order(offer, first)
        u.ask("temporal", u.choice(["Where do I work now?", "Who is my current employer?"]), "emp_now", [emp2])
        u.ask("temporal", "Which company did I work for before my current job?", "emp_old", [emp])
    else:
        u.ask("paraphrase", "Which company pays my salary?", "emp_now", [emp])
        u.ask("keywords", "my job title", "role", [role])


def t_home(u):
    c1 = u.pick(CITIES)
    yrs = u.rng.randint(2, 10)
    moved = u.chance(0.6)
    tag = "home_old" if moved else "home_now"
    intro = u.say(u.choice([
        f"I live in {c1}, in a small flat near the river.",
        f"We've been renting a house in {c1} for about {NUM_WORDS[yrs]} years.",
        f"I'm based in {c1}. The winters here are grim but the food makes up for it.",
    ]), [(tag, f"User lives in {c1}.")])
    if moved:
        c2 = u.pick(CITIES)
        mv = u.say(u.choice([
            f"Big news, we moved to {c2} last month! The new apartment is on the third floor and gets loads of light.",
            f"We finally did it and moved from {c1} to {c2}. Our apartment here is tiny but the neighbourhood is lovely.",
            f"Quick update: I've relocated to {c2} for good, so any local recommendations should be for there now.",
        ]), [("home_now", f"User moved to {c2}.")])
        facts = mv["facts"]
        if c1 in mv["text"]:
            facts[0] = (["home_now", "home_old"], f"User moved from {c1} to {c2}.")
        if "apartment" in mv["text"]:
            facts.append((["home_now", "home_flat"], f"User lives in an apartment in {c2}."))
        u.order(intro, mv, gap=2)
        u.ask("temporal", u.choice(["Where do I live now?", "What city am I living in at the moment?"]), "home_now", [c2])
        u.ask("temporal", "Where did I live before I moved?", "home_old", [c1])
        if "apartment" in mv["text"]:
            u.ask("keywords", f"{c2} apartment", "home_flat", [c2])
    else:
        u.ask("paraphrase", "Which city is home for me?", "home_now", [c1])
        u.ask("keywords", f"{c1} home", "home_now", [c1])


def t_hobbies(u):
    picked = []
    for _ in range(2):
        options = [c for c in CLASSES if u.free(c[0])]
        cls = u.choice(options)
        u.take(cls[0])
        picked.append(cls)
    said = []
    for i, (word, noun, raw, clean) in enumerate(picked):
        teacher, _ = u.name()
        venue = u.pick(VENUES)
        day = u.pick(WEEKDAYS)
        slots = {"teacher": teacher, "venue": venue, "day": day}
        st = u.say(raw.format(**slots), [(f"class class{i} class{i}_day", clean.format(**slots))])
        said.append(st)
        if i == 0:
            u.ask("keywords", f"{noun} day", f"class{i}_day", [day])
            if "{venue}" in raw:
                u.ask("entity", f"What do I do at {venue}?", f"class{i}", [word])
            else:
                u.ask("entity", f"Who is {teacher}?", f"class{i}", [word])
    u.ask("multi", "What classes or lessons am I taking at the moment?", "class", [picked[0][0], picked[1][0]])
    if u.chance(0.7):
        key, raw, clean, question, slot = u.choice([h for h in FREE_HOBBIES if u.free(h[0])])
        u.take(key)
        value = {"gym": lambda: u.pick(GYMS), "bird": lambda: u.pick(BIRDS), "rating": lambda: str(u.rng.choice([1200, 1400, 1600, 1800])),
                 "starter": lambda: u.pick(STARTERS), "kilos": lambda: str(u.rng.randint(12, 40)),
                 "item": lambda: u.pick(KNIT_ITEMS), "swimgroup": lambda: u.pick(SWIM_GROUPS)}[slot]()
        u.take(value)
        u.say(raw.format(**{slot: value}), [("free_hobby", clean.format(**{slot: value}))])
        u.ask("paraphrase", question, "free_hobby", [value])


def t_races(u):
    (d1, v1, times1, _), (d2, v2, _, goals2) = u.rng.sample(DISTANCES, 2)
    n1, n2 = u.pick(RACE_PREFIX), u.pick(RACE_PREFIX)
    m1, m2 = u.pick(MONTHS), u.pick(MONTHS)
    t1, g2 = u.choice(times1), u.choice(goals2)
    past = u.say(u.choice([
        f"I {'ran' if v1 == 'run' else 'did' if v1 == 'do' else 'rode'} the {n1} {d1} in {m1} and finished in {t1}!",
        f"Still buzzing from the {n1} {d1} back in {m1}. I finished in {t1}, a new personal best.",
        f"Back in {m1} I took part in the {n1} {d1}. It was brutal but I finished in {t1}.",
    ]), [("race1 race1_when", f"User took part in the {n1} {d1} in {m1}."), ("race1_time", f"User finished the {n1} {d1} in {t1}.")])
    fut = u.say(u.choice([
        f"I just signed up for the {n2} {d2} in {m2}, so training starts now. My goal is to finish under {g2}.",
        f"I've entered the {n2} {d2}, which is in {m2}. I'd love to finish in under {g2}.",
    ]), [("race2 race2_when", f"User signed up for the {n2} {d2} in {m2}."), ("race2_goal", f"User wants to finish the {n2} {d2} in under {g2}.")])
    verb = {"run": "run", "do": "do", "ride": "ride"}[v1]
    u.ask("temporal", f"When did I {verb} the {d1}?", "race1_when", [m1])
    u.ask("keywords", f"{d1} finish time", "race1_time", [t1])
    u.ask("paraphrase", "Which race am I training for?", "race2", [n2])
    u.ask("entity", f"What's my target time for the {n2} {d2}?", "race2_goal", [g2])
    u.ask("multi", "Which races have I done or signed up for?", "race1 race2", [n1, n2])
    if u.chance(0.4):
        again = u.say(f"I'm still proud of my {t1} at the {n1} {d1}.", [("race1 race1_time", f"User finished the {n1} {d1} in {t1}.")])
        u.order(past, again, gap=2)


def t_travel(u):
    p1, p2, p3 = u.pick(REGIONS + CITIES), u.pick(REGIONS + CITIES), u.pick(REGIONS + CITIES)
    m1, m2 = u.pick(MONTHS), u.pick(MONTHS)
    h1 = u.pick(HIGHLIGHTS)
    u.take("overrated")
    v = u.rng.randrange(3)
    if v == 0:
        trip1 = u.say(f"We spent a week in {p1} in {m1}, the {h1} were incredible.",
                      [("trip1 trip1_when", f"User spent a week in {p1} in {m1}."), ("trip1_opinion", f"User found the {h1} in {p1} incredible.")])
    elif v == 1:
        trip1 = u.say(f"Back in {m1} we went to {p1} for ten days. It rained almost every day, but the {h1} made up for it.",
                      [("trip1 trip1_when", f"User went to {p1} for ten days in {m1}."), ("trip1_opinion", f"User's trip to {p1} was rainy, but they loved the {h1}.")])
    else:
        trip1 = u.say(f"My favourite trip so far was {p1} in {m1}. I still think about the {h1}.",
                      [("trip1 trip1_when", f"User travelled to {p1} in {m1}."), ("trip1_opinion", f"User's favourite trip was {p1}, especially the {h1}.")])
    u.say(u.choice([
        f"Honestly {p2} was a bit overrated, way too crowded when we went in {m2}.",
        f"We did a long weekend in {p2} in {m2}. Nice enough, but overrated and very crowded.",
    ]), [("trip2 trip2_when", f"User visited {p2} in {m2}."), ("trip2_opinion", f"User found {p2} overrated and crowded.")])
    season = u.choice(SEASONS)
    u.say(u.choice([
        f"We're planning a trip to {p3} next {season}, probably for two weeks.",
        f"Next on my list is {p3}, hopefully next {season} if work allows.",
    ]), [("trip3", f"User is planning a trip to {p3} next {season}.")])
    u.ask("entity", f"What did I think of {p1}?", "trip1_opinion", [h1])
    u.ask("entity", f"How did I find {p2}?", "trip2_opinion", ["overrated"])
    u.ask("temporal", f"When did I visit {p2}?", "trip2_when", [m2])
    u.ask("paraphrase", "Where am I hoping to go on my next holiday?", "trip3", [p3])
    u.ask("keywords", f"{p1} trip", "trip1", [p1])
    u.ask("multi", "Which places have I already been to on holiday?", "trip1 trip2", [p1, p2])


def t_food(u):
    allergen, adj = u.pick(ALLERGENS)
    allergy = u.say(u.choice([
        f"I'm allergic to {allergen}, so I always have to check labels.",
        f"Just so you know, I have a pretty serious {adj} allergy.",
        f"I carry an EpiPen because of my {adj} allergy.",
    ]), [("allergy", f"User is allergic to {allergen}.")])
    u.ask("paraphrase", "Is there anything I can't eat for medical reasons?", "allergy", [allergen, adj])
    u.ask("keywords", "food allergy", "allergy", [allergen, adj])
    if u.chance(0.4):
        again = u.say(u.choice([
            f"Since I'm allergic to {allergen}, I skipped the dessert at the office party.",
            f"Remember that I can't have anything with {allergen} in it. My throat swells up.",
        ]), [("allergy", f"User is allergic to {allergen}.")])
        u.order(allergy, again, gap=2)
    dislike = u.pick(DISLIKES)
    like = u.pick(LIKES)
    u.say(f"I really can't stand {dislike}, it ruins any dish for me.", [("dislike", f"User dislikes {dislike}.")])
    u.say(u.choice([f"I love {like}, I'd put it on everything.", f"Anything with {like} in it is a winner for me."]),
          [("like", f"User loves {like}.")])
    u.ask("paraphrase", "Which ingredient do I hate?", "dislike", [dislike])
    u.ask("paraphrase", "What flavour do I never get tired of?", "like", [like])
    avoid_tags, avoid_answers = "allergy dislike", [allergen, adj, dislike]
    if u.chance(0.5):
        diet, year = u.choice(DIETS), u.pick([str(y) for y in range(2008, 2024)])
        u.take(diet)
        u.say(f"I've been {diet} since {year}, so no meat in recipes please.", [("diet diet_since", f"User has been {diet} since {year}.")])
        u.ask("temporal", f"How long have I been {diet}?", "diet_since", [year])
        avoid_tags, avoid_answers = "allergy dislike diet", [allergen, adj, dislike, diet]
    u.ask("multi", "What should you leave out when suggesting recipes for me?", avoid_tags, avoid_answers)
    if u.chance(0.6):
        cuisine, rest = u.pick(CUISINES), u.pick(RESTAURANTS)
        u.say(f"{cuisine} food is my absolute favourite, and there's a great little place near me called {rest}.",
              [("cuisine", f"User's favourite cuisine is {cuisine}."), ("restaurant", f"User likes a {cuisine} restaurant called {rest}.")])
        u.ask("entity", f"What kind of food does {rest} serve?", "restaurant", [cuisine])


def t_health(u):
    cond, consequence = u.pick(CONDITIONS)
    u.say(f"I've had {cond} since I was a teenager, so {consequence}.", [("condition", f"User has had {cond} since they were a teenager.")])
    u.ask("paraphrase", "What long-term health issue do I live with?", "condition", [cond])
    a1, a2 = u.pick(APPOINTMENTS), u.pick(APPOINTMENTS)
    m1, m2 = u.pick(MONTHS), u.pick(MONTHS)
    d1, d2 = u.rng.randint(2, 28), u.rng.randint(2, 28)
    first = u.say(u.choice([f"I have {art(a1)} on {m1} {d1}, it's long overdue.", f"Booked my {a1} for {m1} {d1}, finally."]),
                  [("appt1", f"User has {art(a1)} on {m1} {d1}.")])
    second = u.say(f"I also need to remember my {a2} on {m2} {d2}.", [("appt2", f"User has {art(a2)} on {m2} {d2}.")])
    u.order(first, second, gap=0)
    u.ask("temporal", f"When is my {a1}?", "appt1", [m1])
    u.ask("keywords", f"{a2} date", "appt2", [m2])
    if u.chance(0.6):
        part, sport = u.pick(INJURIES)
        u.take(sport)
        m3 = u.pick(MONTHS)
        u.say(f"I hurt my {part} playing {sport} in {m3} and I'm still doing physio twice a week.",
              [("injury injury_when", f"User injured their {part} playing {sport} in {m3}."), ("physio", "User does physiotherapy twice a week.")])
        u.ask("paraphrase", "How did I get injured?", "injury", [sport])
    if u.chance(0.4):
        supp = u.pick(SUPPLEMENTS)
        u.say(f"I take {supp} every morning with breakfast.", [("supp", f"User takes {supp} every morning.")])
        u.ask("keywords", "daily supplement", "supp", [supp])


def t_weddings(u):
    f, _ = u.name()
    c, _ = u.name()
    city = u.pick(CITIES)
    m, d = u.pick(MONTHS), u.rng.randint(1, 28)
    role = u.choice(["I'm in the wedding party", "I'm doing one of the readings", "I'm officiating"])
    u.say(f"My friend {f} is getting married on {m} {d} in {city}, and {role}!",
          [("wedA wedA_when", f"User's friend {f} is getting married on {m} {d} in {city}."),
           ("wedA_role", f"User has a role in {f}'s wedding ceremony.")])
    u.say(f"I gave a speech at my cousin {c}'s wedding last weekend and nobody cried, which I count as a win.",
          [("wedB", f"User gave a speech at their cousin {c}'s wedding.")])
    u.ask("entity", f"When is {f}'s wedding?", "wedA_when", [m])
    u.ask("keywords", f"{f} wedding location", "wedA", [city])
    u.ask("paraphrase", "At whose marriage celebration did I say a few words?", "wedB", [c])
    u.ask("multi", "Which weddings have I been involved in lately?", "wedA wedB", [f, c])


def t_concerts(u):
    a1, a2 = u.pick(ARTISTS), u.pick(ARTISTS)
    v1 = u.pick(VENUES_MUSIC)
    m2 = u.pick(MONTHS)
    u.say(u.choice([f"Went to see {a1} at {v1} last night, what a show. My ears are still ringing.",
                    f"I saw {a1} live at {v1} on Friday and it was the best gig of my life."]),
          [("gig1", f"User saw {a1} live at {v1}.")])
    u.say(u.choice([f"I got tickets to see {a2} in {m2}!", f"{a2} announced a tour for {m2} and I managed to get tickets before they sold out."]),
          [("gig2 gig2_when", f"User has tickets to see {a2} in {m2}.")])
    u.ask("entity", f"Where did I see {a1}?", "gig1", [v1])
    u.ask("temporal", f"When is the {a2} concert?", "gig2_when", [m2])
    u.ask("multi", "Which concerts have I been to or got tickets for?", "gig1 gig2", [a1, a2])
    u.ask("keywords", f"{a2} tickets", "gig2", [a2])


def t_near_identical(u):
    """Two mentions that read almost alike but are different events; the later, more specific
    one is said in a later session, as people do."""
    friend, _ = u.name()
    kinds = [k for k in range(4) if f"pairkind{k}" not in u.taken]
    if not kinds:
        return
    kind = u.choice(kinds)
    u.taken.add(f"pairkind{kind}")
    px = f"ev{kind}"  # a user may get two pairs; their tags must not mix
    if kind == 0:
        a = u.say("I attended a pride parade recently with a few coworkers, the floats were amazing.",
                  [(f"{px}A", "User attended a pride parade recently with coworkers."), (f"{px}A_detail", "User thought the floats at the pride parade were amazing.")])
        b = u.say(f"Last week I went to the LGBTQ+ pride parade downtown with {friend}. We stayed until the fireworks.",
                  [(f"{px}B", f"User attended the LGBTQ+ pride parade downtown last week with {friend}."), (f"{px}B_detail", "User stayed at the pride parade until the fireworks.")])
        u.ask("paraphrase", "Which parade did I go to with colleagues?", f"{px}A", ["coworkers"])
        u.ask("entity", "Who went with me to the LGBTQ+ pride parade?", f"{px}B", [friend])
        u.ask("multi", "How many pride parades have I been to?", f"{px}A {px}B", ["pride"])
    elif kind == 1:
        tech = u.pick(MEETUP_TECH)
        a = u.say("I went to a tech meetup recently and ended up chatting with a recruiter for an hour.",
                  [(f"{px}A", "User went to a tech meetup recently and talked with a recruiter.")])
        b = u.say(f"Last Tuesday I went to the {tech} meetup with {friend} and gave a lightning talk on error handling.",
                  [(f"{px}B", f"User gave a lightning talk on error handling at the {tech} meetup last Tuesday."), (f"{px}B_friend", f"User went to the {tech} meetup with {friend}.")])
        u.ask("paraphrase", "Where did I end up talking to someone hiring?", f"{px}A", ["recruiter"])
        u.ask("entity", f"What did I present at the {tech} meetup?", f"{px}B", ["error handling"])
        u.ask("multi", "Which meetups have I been to?", f"{px}A {px}B", ["meetup"])
    elif kind == 2:
        a = u.say("I joined a climate march recently, the turnout was huge.",
                  [(f"{px}A", "User joined a climate march recently with a huge turnout.")])
        b = u.say(f"Last Friday I joined the climate strike march outside city hall with {friend}, and we made our own signs.",
                  [(f"{px}B", f"User joined the climate strike march outside city hall last Friday with {friend}."), (f"{px}B_detail", "User made their own sign for the climate strike march.")])
        u.ask("paraphrase", "Which protest had an enormous crowd?", f"{px}A", ["turnout"])
        u.ask("entity", "Who did I go to the city hall climate strike with?", f"{px}B", [friend])
        u.ask("multi", "How many climate marches have I joined?", f"{px}A {px}B", ["climate"])
    else:
        author, shop = u.pick(AUTHORS), u.pick(BOOKSHOPS)
        a = u.say("I went to a book reading recently at a tiny bookshop, and the author was hilarious.",
                  [(f"{px}A", "User went to a book reading at a small bookshop recently and found the author hilarious.")])
        b = u.say(f"Last week I went to {author}'s book reading at {shop} with {friend} and got my copy signed.",
                  [(f"{px}B", f"User went to {author}'s book reading at {shop} last week with {friend}."), (f"{px}B_detail", f"User got their book signed by {author}.")])
        u.ask("paraphrase", "At which literary event was the writer really funny?", f"{px}A", ["hilarious"])
        u.ask("entity", f"Where did {author} do the reading I went to?", f"{px}B", [shop])
        u.ask("multi", "Which book readings have I been to?", f"{px}A {px}B", ["book reading"])
    u.order(a, b)


def t_conference(u):
    conf, topic, m = u.pick(CONFERENCES), u.pick(TALK_TOPICS), u.pick(MONTHS)
    u.say(u.choice([f"I'm giving a talk at {conf} in {m} about {topic}.",
                    f"My talk on {topic} got accepted at {conf}! It's in {m}, so I need to start writing slides."]),
          [("conf conf_when", f"User is giving a talk at {conf} in {m}."), ("conf_topic", f"User's {conf} talk is about {topic}.")])
    u.ask("temporal", f"When am I speaking at {conf}?", "conf_when", [m])
    u.ask("entity", f"What am I presenting at {conf}?", "conf_topic", [topic])
    u.ask("keywords", f"{conf} talk topic", "conf_topic", [topic])


def t_preferences(u):
    opts = u.rng.sample(range(6), u.rng.randint(2, 3))
    for o in opts:
        if o == 0:
            st = u.say("I like my summaries short, bullet points if possible.", [("pref_summary", "User prefers short summaries in bullet points.")])
            u.ask("paraphrase", "What format do I want recaps in?", "pref_summary", ["bullet"])
            u.ask("keywords", "summary length preference", "pref_summary", ["short"])
            if u.chance(0.4):
                again = u.say("Again, short bullet points work best for me.", [("pref_summary", "User prefers short bullet points.")])
                u.order(st, again, gap=2)
        elif o == 1:
            lang, other = u.pick(PREFERRED_LANGS), u.pick(OTHER_LANGS)
            u.say(f"I prefer {lang} over {other} for scripting, so use that in examples.", [("pref_lang", f"User prefers {lang} over {other} for scripting.")])
            u.ask("entity", f"Which do I like better for scripting, {lang} or {other}?", "pref_lang", [lang])
            u.ask("keywords", "scripting language preference", "pref_lang", [lang])
        elif o == 2:
            u.say("I use metric units, so no miles or Fahrenheit please.", [("pref_units", "User prefers metric units.")])
            u.ask("paraphrase", "What measurement system should you use with me?", "pref_units", ["metric"])
        elif o == 3:
            u.say("I'd rather you didn't use emojis in your replies.", [("pref_emoji", "User does not want emojis in replies.")])
            u.ask("paraphrase", "Is it okay to put smiley faces in your messages to me?", "pref_emoji", ["emojis"])
        elif o == 4:
            u.say("I write in British English, so use British spelling with me.", [("pref_spelling", "User prefers British English spelling.")])
            u.ask("keywords", "spelling preference", "pref_spelling", ["British"])
        else:
            u.say("I prefer a casual tone, no need to be formal with me.", [("pref_tone", "User prefers a casual, informal tone.")])
            u.ask("paraphrase", "What kind of voice should you use when talking to me?", "pref_tone", ["casual"])


def t_possessions(u):
    (brand, model) = u.pick(CARS)
    year = u.pick([str(y) for y in range(2009, 2023)])
    changed = u.chance(0.5)
    car = u.say(f"I drive a {year} {brand} {model}, it's not fancy but it's reliable.",
                [("car_old" if changed else "car_now", f"User drives a {year} {brand} {model}.")])
    if changed:
        (b2, m2) = u.pick(CARS)
        new = u.say(u.choice([f"I finally sold the {model} and bought a {b2} {m2}!",
                              f"Traded in my old {brand} last week, I'm now driving a {b2} {m2}."]),
                    [("car_now", f"User replaced their {brand} {model} with a {b2} {m2}.")])
        u.order(car, new, gap=2)
        u.ask("temporal", "What car do I drive now?", "car_now", [f"{b2} {m2}"])
    else:
        u.ask("paraphrase", "What car have I got?", "car_now", [f"{brand} {model}"])
        u.ask("keywords", "car model", "car_now", [f"{brand} {model}"])
    if u.chance(0.6):
        bike, short = u.pick(BIKES)
        mins = u.rng.choice([15, 20, 25, 35])
        u.say(f"I commute on my {bike} most days, it's about {mins} minutes each way.",
              [("bike", f"User commutes by {bike}."), ("commute", f"User's commute takes about {mins} minutes each way.")])
        u.ask("paraphrase", "How do I get to the office?", "bike", [short])
    if u.chance(0.3):
        cam = u.pick(CAMERAS)
        u.say(f"I shoot on a {cam}, mostly street photography.", [("camera", f"User shoots street photography on a {cam}.")])
        u.ask("keywords", "camera model", "camera", [cam])


def t_schedules(u):
    d1, d2 = u.pick(WEEKDAYS[:5]), u.pick(WEEKDAYS[:5])
    d1, d2 = sorted([d1, d2], key=WEEKDAYS.index)
    u.say(f"I work from home on {d1}s and {d2}s, the rest of the week I'm in the office.",
          [("wfh", f"User works from home on {d1}s and {d2}s.")])
    u.ask("paraphrase", "Which days am I remote?", "wfh", [d1, d2])
    time = u.choice(["9:15", "9:30", "10:00", "8:45"])
    u.take(time)
    u.say(f"Our team standup is at {time} every morning, so I can't do early calls.", [("standup", f"User's team standup is at {time} every morning.")])
    u.ask("keywords", "standup time", "standup", [time])
    if u.chance(0.6):
        day = u.pick(WEEKDAYS)
        place = u.pick(VOLUNTEER)
        u.say(f"I volunteer at the {place} every {day} morning.", [("volunteer", f"User volunteers at the {place} on {day} mornings.")])
        u.ask("temporal", "When do I do my volunteering?", "volunteer", [day])


def t_education(u):
    subj, uni = u.pick(SUBJECTS), u.pick(UNIS)
    year = u.pick([str(y) for y in range(2004, 2022)])
    u.say(f"I studied {subj} at {uni} and graduated in {year}.",
          [("degree", f"User studied {subj} at {uni}."), ("grad_year", f"User graduated from {uni} in {year}.")])
    u.ask("entity", f"What did I study at {uni}?", "degree", [subj])
    u.ask("temporal", "What year did I finish my degree?", "grad_year", [year])
    if u.chance(0.5):
        s2 = u.pick(ONLINE_SUBJECTS)
        u.say(f"I'm doing a part-time master's in {s2} online, which eats most of my weekends.",
              [("masters", f"User is doing a part-time online master's in {s2}.")])
        u.ask("paraphrase", "What postgraduate course am I enrolled in?", "masters", [s2])


def t_languages(u):
    l1, l2, app = u.pick(LANGS_NATIVE), u.pick(LANGS_LEARN), u.pick(LANG_APPS)
    n = u.rng.choice([47, 112, 230, 365, 512])
    u.take(str(n))
    u.say(f"I grew up speaking {l1} at home, so it's basically my first language.", [("native", f"User's first language is {l1}.")])
    u.say(f"I've been learning {l2} with {app} and I'm on a {n} day streak.",
          [("learning", f"User is learning {l2}."), ("streak", f"User has a {n} day streak on {app}.")])
    u.ask("paraphrase", "What's my mother tongue?", "native", [l1])
    u.ask("keywords", f"{l2} streak", "streak", [str(n)])
    u.ask("entity", f"What am I using {app} for?", "learning", [l2])


def t_friends(u):
    f, _ = u.name()
    biz, city = u.pick(BIZ), u.pick(CITIES)
    m, d = u.pick(MONTHS), u.rng.randint(1, 28)
    intro = u.say(f"My best friend {f} runs {art(biz)} in {city}.", [("bff bff_job", f"User's best friend {f} runs {art(biz)} in {city}.")])
    bday = u.say(f"{f}'s birthday is on {m} {d}, and I always leave the present to the last minute.",
          [("bff bff_bday", f"User's best friend {f}'s birthday is on {m} {d}.")])
    u.order(intro, bday, gap=0)
    u.ask("paraphrase", "Who is my closest mate?", "bff", [f])
    u.ask("entity", f"What does {f} do for a living?", "bff_job", [biz])
    u.ask("temporal", "When is my best friend's birthday?", "bff_bday", [m])


def t_parents(u):
    job, city = u.pick(RETIRED_JOBS), u.pick(CITIES)
    age = u.choice([60, 65, 70, 75, 80])
    m = u.pick(MONTHS)
    u.say(f"My mum is a retired {job} and still lives in {city}.",
          [("mum_job", f"User's mother is a retired {job}."), ("mum_city", f"User's mother lives in {city}.")])
    u.say(f"My dad turns {DECADE_WORDS[age]} in {m}, and we're planning a surprise party.",
          [("dad_bday", f"User's father turns {DECADE_WORDS[age]} in {m}."), ("dad_party", "User is planning a surprise party for their father.")])
    u.ask("paraphrase", "What was my mother's career?", "mum_job", [job])
    u.ask("temporal", "When is my father's big birthday?", "dad_bday", [m])
    u.ask("keywords", "mum hometown", "mum_city", [city])


def t_media(u):
    book, show = u.pick(BOOKS), u.pick(SHOWS)
    u.say(f"I'm reading {book} right now and I can't put it down.", [("book", f"User is currently reading {book}.")])
    u.say(f"My favourite show at the moment is {show}, I've watched it twice.", [("show", f"User's favourite TV show at the moment is {show}.")])
    u.ask("paraphrase", "What novel am I in the middle of?", "book", [book])
    u.ask("keywords", "favourite series", "show", [show])
    if u.chance(0.5):
        pod = u.pick(PODCASTS)
        u.say(f"I listen to {pod} on my way to work.", [("podcast", f"User listens to the podcast {pod}.")])
        u.ask("keywords", "favourite podcast", "podcast", [pod])


def t_garden(u):
    a, b = u.pick(PLANTS), u.pick(PLANTS)
    u.say(f"I grow {a} and {b} on my balcony, with mixed results so far.",
          [("plants", f"User grows {a} and {b} on their balcony.")])
    u.ask("paraphrase", "Which plants am I looking after at home?", "plants", [a, b])


def t_goals(u):
    goal, key = u.pick(SAVING_GOALS)
    u.take(key)
    year = u.pick([str(y) for y in range(2026, 2031)])
    u.say(f"I'm saving up for {goal}, hoping to get there by {year}.", [("saving", f"User is saving up for {goal}.")])
    u.ask("paraphrase", "What am I putting money aside for?", "saving", [key])
    if u.chance(0.5):
        n = u.rng.choice([24, 30, 40, 52])
        m = u.rng.randint(5, 18)
        u.take(str(n))
        u.say(f"My goal this year is to read {n} books, I'm at {m} so far.", [("read_goal", f"User aims to read {n} books this year.")])
        u.ask("keywords", "reading goal", "read_goal", [str(n)])


LAPTOPS = ["ThinkPad X1 Carbon", "MacBook Air", "Framework laptop", "Dell XPS 13", "MacBook Pro", "Surface Laptop"]
PHONES = [("Pixel 8", "Android"), ("iPhone 15", "iPhone"), ("Fairphone 5", "Android"), ("Galaxy S23", "Android"), ("iPhone 13 mini", "iPhone")]
LANDLORD_FIXES = ["the boiler", "the leaking roof", "the broken intercom", "the mouldy bathroom window"]


def t_tech(u):
    laptop = u.pick(LAPTOPS)
    u.say(f"My work laptop is a {laptop} and the battery barely lasts a meeting.",
          [("laptop", f"User's work laptop is a {laptop}.")])
    u.ask("keywords", "work laptop", "laptop", [laptop])
    (phone, kind) = u.pick(PHONES)
    other = "Android" if kind == "iPhone" else "iPhone"
    u.take(other)
    u.say(f"I switched from an {other} to a {phone} last year and I'm not going back.",
          [("phone", f"User switched from {other} to a {phone}.")])
    u.ask("paraphrase", "What mobile do I carry?", "phone", [phone])


def t_routines(u):
    opts = u.rng.choice([[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]])
    for o in opts:
        if o == 0:
            how = u.choice(["black, no sugar", "with oat milk", "as a double espresso"])
            u.say(f"I take my coffee {how}, and never after 2pm.", [("coffee", f"User takes their coffee {how}."), ("coffee_cutoff", "User does not drink coffee after 2pm.")])
            u.ask("paraphrase", "How do I like my morning brew?", "coffee", [how])
        elif o == 1:
            mins = u.choice(["ten", "fifteen", "twenty"])
            u.say(f"I meditate for {mins} minutes before bed, it really helps me switch off.", [("meditate", f"User meditates for {mins} minutes before bed.")])
            u.ask("paraphrase", "What do I do to wind down at night?", "meditate", ["meditate"])
        elif o == 2:
            t = u.choice(["5:45", "6:15", "6:30"])
            u.take(t)
            u.say(f"My alarm goes off at {t} on weekdays, which I hate.", [("alarm", f"User wakes up at {t} on weekdays.")])
            u.ask("keywords", "weekday wake up time", "alarm", [t])
        else:
            n = u.choice(["two", "three"])
            u.say(f"I'm trying to cut down to {n} cups of tea a day.", [("tea", f"User is trying to limit themselves to {n} cups of tea a day.")])
            u.ask("paraphrase", "How much caffeine am I aiming for each day?", "tea", [n])


def t_home_details(u):
    landlord, g = u.name()
    fix = u.pick(LANDLORD_FIXES)
    u.say(f"Our landlord {landlord} finally fixed {fix} after three months of emails.",
          [("landlord", f"User's landlord is {landlord}."), ("landlord_fix", f"User's landlord {landlord} fixed {fix} after months of delay.")])
    u.ask("paraphrase", "Who owns the place I rent?", "landlord", [landlord])
    u.ask("entity", f"What did {landlord} repair?", "landlord_fix", [fix.replace("the ", "")])
    neighbour, _ = u.name()
    thing = u.choice(["plays the trumpet at 7am", "grows enormous pumpkins", "runs a tiny free library by the gate", "throws a street party every summer"])
    u.say(f"My neighbour {neighbour} {thing}.", [("neighbour", f"User's neighbour {neighbour} {thing}.")])
    u.ask("keywords", "neighbour name", "neighbour", [neighbour])


# The topics with built-in distractors or updates are weighted up: they are the hard cases.
TOPICS = [
    (t_pets, 0.8), (t_siblings, 0.75), (t_partner, 0.5), (t_kids, 0.4), (t_work, 0.9),
    (t_home, 0.9), (t_hobbies, 0.7), (t_races, 0.6), (t_travel, 0.75), (t_food, 0.8),
    (t_health, 0.6), (t_weddings, 0.5), (t_concerts, 0.55), (t_near_identical, 0.8),
    (t_conference, 0.35), (t_preferences, 0.7), (t_possessions, 0.6), (t_schedules, 0.5),
    (t_education, 0.45), (t_languages, 0.45), (t_friends, 0.45), (t_parents, 0.45),
    (t_media, 0.45), (t_garden, 0.25), (t_goals, 0.3), (t_tech, 0.4), (t_routines, 0.45),
    (t_home_details, 0.4), (t_near_identical, 0.35),
]


# ---------------------------------------------------------------------------------------------
# Assembly: statements into sessions and turns, filler around them, ids, questions resolved.

def place(u, n_sessions):
    """Session of every statement: each order constraint holds, load roughly level."""
    parent = {st["key"]: st["key"] for st in u.stmts}

    def root(k):
        while parent[k] != k:
            k = parent[k]
        return k

    edges = []
    for keys, gap in u.seqs:
        for a, b in zip(keys, keys[1:]):
            edges.append((a, b, gap))
            parent[root(b)] = root(a)
    groups = {}
    for st in u.stmts:
        groups.setdefault(root(st["key"]), []).append(st["key"])
    comps = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
    session_of = {}
    load = [0] * n_sessions
    for comp in comps:
        inner = [e for e in edges if e[0] in comp]
        best = None
        for _ in range(80):
            s = {k: u.rng.randrange(n_sessions) for k in comp}
            if any(s[b] < s[a] + g for a, b, g in inner):
                continue
            score = sum(load[s[k]] for k in comp) + u.rng.random()
            if best is None or score < best[0]:
                best = (score, s)
        if best is None:
            # Tight constraints: longest-path layering from the first session.
            s = {k: 0 for k in comp}
            for _ in comp:
                for a, b, g in inner:
                    s[b] = max(s[b], s[a] + g)
            best = (0, {k: min(n_sessions - 1, v) for k, v in s.items()})
        for k in comp:
            session_of[k] = best[1][k]
            load[best[1][k]] += 1
    return session_of


def build_user(rng, index):
    uid = f"u{index:02d}"
    u = User(rng, uid)
    n_sessions = rng.randint(8, 12)
    # Facts, not statements, set how much a user says: 60-150 per user is the brief.
    target = rng.randint(62, 112)
    order = list(TOPICS)
    rng.shuffle(order)
    chosen = [t for t, w in order if rng.random() < w]
    # Topped up from the rest only if the user is too quiet.
    chosen += [t for t, _ in order if t not in chosen]
    for fn in chosen:
        if sum(len(st["facts"]) for st in u.stmts) >= target:
            break
        u.topic = fn.__name__[2:]
        fn(u)

    session_of = place(u, n_sessions)
    per_session = [[] for _ in range(n_sessions)]
    for st in u.stmts:
        per_session[session_of[st["key"]]].append(st)

    conv_turns = []
    stmt_turn = {}
    day = 0
    filler_pool = list(FILLER)
    for s in range(n_sessions):
        if s:
            day += rng.randint(1, 12)
        stmts = per_session[s]
        rng.shuffle(stmts)
        messages = []  # (text, [stmt, ...])
        i = 0
        while i < len(stmts):
            a = stmts[i]
            # People pack two unrelated pieces of news into one message; an evidence turn then
            # carries a sentence that answers nothing, as in real logs.
            if i + 1 < len(stmts) and rng.random() < 0.18:
                b = stmts[i + 1]
                joined = a["text"] + " " + also(b["text"])
                if a["topic"] != b["topic"] and len(sentences(joined)) <= 3:
                    messages.append((joined, [a, b]))
                    i += 2
                    continue
            text = a["text"]
            # "Side note: I also need ..." reads wrong, so openers skip statements with an early "also".
            if rng.random() < 0.15 and " also " not in text[:12]:
                opener = rng.choice(OPENERS)
                if len(sentences(text)) < 3 and text.split(" ")[0] in ("I", "I'm", "I've", "My", "We", "We've", "We're", "Our"):
                    text = opener + lower_first(text)
            if rng.random() < 0.12 and len(sentences(text)) < 3 and not text.endswith("?"):
                text = text + " " + rng.choice(ASKS)
            messages.append((text, [a]))
            i += 1
        n_info = len(messages)
        # About a third of turns carry no fact, and a session stays within 5-10 turns.
        n_fill = max(1, round(n_info * rng.uniform(0.45, 0.75)))
        n_fill = min(max(n_fill, 5 - n_info), max(1, 10 - n_info))
        fills = []
        for _ in range(n_fill):
            if not filler_pool:
                filler_pool = list(FILLER)
            fills.append((filler_pool.pop(rng.randrange(len(filler_pool))), []))
        turns = messages + fills
        rng.shuffle(turns)
        turns = intro_first(turns, u.seqs)
        for t, (text, sts) in enumerate(turns):
            tid = f"{uid}-s{s:02d}-t{t:02d}"
            facts = []
            for st in sts:
                stmt_turn[st["key"]] = tid
                for tags, ft in st["facts"]:
                    fid = f"{tid}-f{len(facts)}"
                    facts.append({"id": fid, "text": ft})
                    st.setdefault("fact_ids", []).append((tags, fid))
            conv_turns.append({"id": tid, "session": s, "day": day, "user": text, "facts": facts})

    for keys, gap in u.seqs:
        for x, y in zip(keys, keys[1:]):
            # Turn ids sort by session, then position: an introduction precedes what follows it.
            tx, ty = stmt_turn[x], stmt_turn[y]
            sx, sy = session_of[x], session_of[y]
            if sy < sx + gap or ty <= tx:
                raise AssertionError(f"{uid}: order broken between {tx} and {ty}")
    questions = select_questions(u, stmt_turn, rng)
    return {"id": uid, "turns": conv_turns, "questions": questions}


def intro_first(turns, seqs):
    """Within one session, a statement that builds on another ("Fiona works as a pilot") is
    moved after the one that introduces it ("my partner Fiona and I ...")."""
    for _ in range(len(turns)):
        where = {st["key"]: i for i, (_, sts) in enumerate(turns) for st in sts}
        bad = [(where[a], where[b]) for keys, _ in seqs for a, b in zip(keys, keys[1:])
               if a in where and b in where and where[b] < where[a]]
        if not bad:
            return turns
        ia, ib = bad[0]
        moved = turns.pop(ib)
        turns.insert(ia, moved)  # ia shifted left by the pop, so this lands right after a
    return turns


def also(text):
    first = text.split(" ")[0]
    if first in ("My", "We", "Our", "We've", "We're"):
        return "Also, " + lower_first(text)
    if first in ("I", "I'm", "I've", "I'd"):
        return "Also, " + text
    return text


def lower_first(text):
    first = text.split(" ")[0]
    return text if first.startswith("I") and first in ("I", "I'm", "I've", "I'd") else text[0].lower() + text[1:]


def resolve(u, cand, stmt_turn):
    turns, facts = [], []
    for st in u.stmts:
        for tags, fid in st.get("fact_ids", []):
            if any(t in tags for t in cand["tags"]):
                facts.append(fid)
                tid = stmt_turn[st["key"]]
                if tid not in turns:
                    turns.append(tid)
    return turns, facts


def select_questions(u, stmt_turn, rng):
    styles = ["paraphrase", "keywords", "entity", "temporal", "multi"]
    want = rng.randint(10, 14)
    quota = {s: want // 5 for s in styles}
    for s in rng.sample(styles, want % 5):
        quota[s] += 1
    by_style = {s: [c for c in u.cands if c["style"] == s] for s in styles}
    for s in styles:
        rng.shuffle(by_style[s])
    per_topic = {}
    picked = []

    def take(style):
        pool = by_style[style]
        if not pool:
            return False
        pool.sort(key=lambda c: per_topic.get(c["topic"], 0))
        c = pool.pop(0)
        per_topic[c["topic"]] = per_topic.get(c["topic"], 0) + 1
        picked.append(c)
        return True

    # Round-robin keeps the styles even when a user's topics favour one of them.
    short = 0
    for _ in range(max(quota.values())):
        for s in styles:
            if quota[s] > 0:
                quota[s] -= 1
                if not take(s):
                    short += 1
    for s in sorted(styles, key=lambda s: -len(by_style[s])):
        while short and take(s):
            short -= 1
    out = []
    for i, c in enumerate(picked):
        turns, facts = resolve(u, c, stmt_turn)
        out.append({"id": f"{u.uid}-q{i:02d}", "text": c["text"], "style": c["style"],
                    "evidence_turns": sorted(turns), "evidence_facts": sorted(facts),
                    "_answers": c["answers"]})
    return out


# ---------------------------------------------------------------------------------------------
# Checks: the labels must hold up, or the benchmark measures the generator.

def word_re(term):
    # "Monday" answers a question about "Mondays"; "cat" must not match "category".
    return re.compile(r"(?<!\w)" + re.escape(term.lower()) + r"s?(?!\w)")


def validate(conversations):
    problems, leaks = [], []
    for conv in conversations:
        turns = {t["id"]: t for t in conv["turns"]}
        facts = {f["id"]: f["text"] for t in conv["turns"] for f in t["facts"]}
        for t in conv["turns"]:
            n = len(sentences(t["user"]))
            if not 1 <= n <= 3:
                problems.append(f"{t['id']}: {n} sentences")
            if re.search(r"\.(?=\S)", t["user"]):
                problems.append(f"{t['id']}: a '.' inside a sentence would split it: {t['user']!r}")
            if t["facts"]:
                kept = declarative_sentences(t["user"])
                for piece in re.split(r"(?<=[.!?])\s+", t["user"]):
                    body = piece.rstrip(".!?").strip()
                    if piece.endswith("?") or piece in FILLER or piece in ASKS:
                        continue
                    if " ".join(body.split()) not in kept:
                        problems.append(f"{t['id']}: fact sentence dropped by memgate's heuristic: {piece!r}")
        for q in conv["questions"]:
            if not q["evidence_turns"]:
                problems.append(f"{q['id']}: no evidence")
            if q["style"] == "multi" and len(q["evidence_turns"]) < 2:
                problems.append(f"{q['id']}: multi with one evidence turn")
            if q["style"] == "keywords" and not classified_as_keywords(q["text"]):
                problems.append(f"{q['id']}: keyword query memgate reads as a question: {q['text']!r}")
            if q["style"] != "keywords" and classified_as_keywords(q["text"]):
                problems.append(f"{q['id']}: question memgate reads as keywords: {q['text']!r}")
            res = [word_re(a) for a in q["_answers"]]
            for fid in q["evidence_facts"]:
                if not any(r.search(facts[fid].lower()) for r in res):
                    problems.append(f"{q['id']}: evidence fact {fid} lacks the answer {q['_answers']}: {facts[fid]!r}")
            for tid in q["evidence_turns"]:
                kept = " ".join(declarative_sentences(turns[tid]["user"])).lower()
                if not any(r.search(kept) for r in res):
                    problems.append(f"{q['id']}: evidence turn {tid} keeps no answer {q['_answers']} as raw items")
            for tid, t in turns.items():
                if tid in q["evidence_turns"]:
                    continue
                text = (t["user"] + " " + " ".join(f["text"] for f in t["facts"])).lower()
                hit = [a for a, r in zip(q["_answers"], res) if r.search(text)]
                if hit:
                    leaks.append(f"{q['id']} {q['text']!r}: answer {hit} also in {tid}: {t['user']!r}")
    return problems, leaks


# ---------------------------------------------------------------------------------------------
# Dedup pairs: a fact stated again with trivial differences must merge; a similar sentence
# with a different fact in it must not.

def dedup_pairs(rng):
    """About 300 pairs, half duplicates; every kind drawn in turn so no one kind dominates."""

    def world():
        city, city2 = rng.sample(CITIES, 2)
        pet, pet2 = rng.sample(PET_NAMES, 2)
        m1, m2 = rng.sample(MONTHS, 2)
        (d1, _, _, _), (d2, _, _, _) = rng.sample(DISTANCES, 2)
        emp, emp2 = rng.sample(EMPLOYERS, 2)
        job, job2 = rng.sample(JOBS, 2)
        place, place2 = rng.sample(REGIONS, 2)
        brand, model = rng.choice(CARS)
        return {
            "city": city, "city2": city2, "pet": pet, "pet2": pet2, "m1": m1, "m2": m2,
            "d1": d1, "d2": d2, "emp": emp, "emp2": emp2, "job": job, "job2": job2,
            "role": rng.choice(ROLES), "place": place, "place2": place2,
            "breed": rng.choice(DOG_BREEDS), "sis": rng.choice(FEMALE), "bro": rng.choice(MALE),
            "friend": rng.choice(FEMALE + MALE), "partner": rng.choice(FEMALE + MALE),
            "allergen": rng.choice(ALLERGENS)[0], "food": rng.choice(DISLIKES),
            "artist": rng.choice(ARTISTS), "lang": rng.choice(LANGS_LEARN),
            "cuisine": rng.choice(CUISINES), "year": str(rng.randint(2012, 2024)),
            "n": rng.randint(2, 9), "car": f"{brand} {model}", "day": rng.choice(WEEKDAYS),
            "tech": rng.choice(MEETUP_TECH), "proj": rng.choice(PROJECTS),
        }

    # (duplicate, kind, style, a, b) with {slots} from world().
    T = [
        (True, "synonym", "fact", "User's dog is named {pet}.", "The user's dog is called {pet}."),
        (True, "synonym", "fact", "User works at {emp}.", "User is employed by {emp}."),
        (True, "synonym", "fact", "User saw {artist} live.", "User saw {artist} in concert."),
        (True, "synonym", "fact", "User is learning {lang}.", "User is studying {lang}."),
        (True, "synonym", "raw", "We named our {breed} {pet}", "We called our {breed} {pet}"),
        (True, "synonym", "raw", "I started a new job at {emp}", "I began a new job at {emp}"),
        (True, "now", "fact", "User lives in {city}.", "User now lives in {city}."),
        (True, "now", "fact", "User works as {a_role} at {emp}.", "User now works as {a_role} at {emp}."),
        (True, "now", "raw", "I live in {city} now", "I live in {city}"),
        (True, "now", "raw", "My sister {sis} is {a_job} now", "My sister {sis} is {a_job}"),
        (True, "rewording", "fact", "User's sister {sis} works as {a_job}.", "User's sister {sis} is {a_job}."),
        (True, "rewording", "fact", "User is allergic to {allergen}.", "User has an allergy to {allergen}."),
        (True, "rewording", "fact", "User's brother {bro} lives in {city2}.", "The brother of the user, {bro}, lives in {city2}."),
        (True, "rewording", "fact", "User's partner is named {partner}.", "User's partner's name is {partner}."),
        (True, "rewording", "raw", "My sister {sis} lives in {city}", "My sister {sis} is living in {city}"),
        (True, "rewording", "raw", "I have a {breed} called {pet}", "I've got a {breed} named {pet}"),
        (True, "word_order", "fact", "User ran the {d1} in {m1}.", "In {m1}, User ran the {d1}."),
        (True, "word_order", "fact", "User visited {place} in {m1}.", "In {m1}, User visited {place}."),
        (True, "word_order", "raw", "I live in {city} now", "I now live in {city}"),
        (True, "word_order", "raw", "I work at {emp} as {a_role}", "I work as {a_role} at {emp}"),
        (True, "word_order", "raw", "I ran the {d1} in {m1}", "In {m1} I ran the {d1}"),
        (True, "contraction", "fact", "User does not like {food}.", "User doesn't like {food}."),
        (True, "contraction", "fact", "User is not a fan of {food}.", "User isn't a fan of {food}."),
        (True, "contraction", "raw", "I'm allergic to {allergen}", "I am allergic to {allergen}"),
        (True, "contraction", "raw", "I don't eat {food}", "I do not eat {food}"),
        (True, "contraction", "raw", "We've had {pet} since {year}", "We have had {pet} since {year}"),
        (True, "case_punct", "fact", "User prefers {lang} subtitles.", "user prefers {lang} subtitles"),
        (True, "case_punct", "fact", "User visited {place} in {m1} {year}.", "User visited {place} in {m1}, {year}"),
        (True, "case_punct", "raw", "My friend {friend} is getting married in {m2}", "My friend {friend} is getting married in {m2}!"),
        (True, "case_punct", "raw", "We named our {breed} {pet}", "we named our {breed_lower} {pet_lower}"),
        (True, "article", "fact", "User adopted {a_breed} from the shelter.", "User adopted {a_breed} from a shelter."),
        (True, "article", "fact", "User drives a {car}.", "User drives the {car}."),
        (True, "article", "raw", "I work as {a_role}", "I work as the {role}"),
        (True, "number_format", "raw", "My dog {pet} is {n_word} years old", "My dog {pet} is {n} years old"),
        (True, "number_format", "fact", "User has {n_word} cousins.", "User has {n} cousins."),
        (True, "spelling", "fact", "User's favourite cuisine is {cuisine}.", "User's favorite cuisine is {cuisine}."),
        (True, "spelling", "raw", "I'm travelling to {place} in {m1}", "I'm traveling to {place} in {m1}"),
        (True, "cross_style", "mixed", "User's sister {sis} lives in {city}.", "My sister {sis} lives in {city}"),
        (True, "cross_style", "mixed", "User is allergic to {allergen}.", "I'm allergic to {allergen}"),
        (True, "cross_style", "mixed", "User works as {a_role} at {emp}.", "I work as {a_role} at {emp}"),
        (True, "cross_style", "mixed", "User has {a_breed} named {pet}.", "We have {a_breed} called {pet}"),

        (False, "value_change", "fact", "User ran the {d1} in {m1}.", "User ran the {d2} in {m1}."),
        (False, "value_change", "fact", "User ran the {d1} in {m1}.", "User ran the {d1} in {m2}."),
        (False, "value_change", "fact", "User lives in {city}.", "User lives in {city2}."),
        (False, "value_change", "fact", "User's dog is named {pet}.", "User's dog is named {pet2}."),
        (False, "value_change", "fact", "User works at {emp}.", "User works at {emp2}."),
        (False, "value_change", "fact", "User's sister {sis} works as {a_job}.", "User's sister {sis} works as {a_job2}."),
        (False, "value_change", "raw", "I ran a {d1} in {m1}", "I ran a {d2} in {m1}"),
        (False, "value_change", "raw", "We named our dog {pet}", "We named our dog {pet2}"),
        (False, "value_change", "raw", "We spent a week in {place} in {m1}", "We spent a week in {place2} in {m1}"),
        (False, "entity_change", "fact", "User's sister lives in {city}.", "User's brother lives in {city}."),
        (False, "entity_change", "fact", "User's dog is named {pet}.", "User's cat is named {pet}."),
        (False, "entity_change", "fact", "User is allergic to {allergen}.", "User's dog is allergic to {allergen}."),
        (False, "entity_change", "fact", "User's partner works as {a_job}.", "User's mother works as {a_job}."),
        (False, "entity_change", "raw", "My sister {sis} lives in {city}", "My brother {bro} lives in {city}"),
        (False, "entity_change", "raw", "My friend {friend} is getting married in {m1}", "My cousin {friend} is getting married in {m1}"),
        (False, "negation", "fact", "User likes {food}.", "User does not like {food}."),
        (False, "negation", "fact", "User eats meat.", "User does not eat meat."),
        (False, "negation", "fact", "User has a car.", "User doesn't have a car."),
        (False, "negation", "raw", "I love {food}", "I can't stand {food}"),
        (False, "negation", "raw", "I'm vegetarian", "I'm not vegetarian anymore"),
        (False, "negation", "raw", "I want emojis in replies", "I don't want emojis in replies"),
        (False, "event_distinct", "fact", "User attended a pride parade recently.", "User attended an LGBTQ+ pride parade last week."),
        (False, "event_distinct", "fact", "User joined a climate march recently.", "User joined the climate strike march outside city hall last Friday."),
        (False, "event_distinct", "fact", "User went to a tech meetup recently.", "User gave a lightning talk at the {tech} meetup last Tuesday."),
        (False, "event_distinct", "fact", "User saw {artist} live.", "User has tickets to see {artist}."),
        (False, "event_distinct", "fact", "User visited {place} in {m1}.", "User is planning to visit {place} in {m1}."),
        (False, "event_distinct", "fact", "User ran a {d1} in {m1}.", "User signed up for a {d1} in {m2}."),
        (False, "event_distinct", "raw", "I attended a pride parade recently", "Last week I went to the LGBTQ+ pride parade downtown"),
        (False, "event_distinct", "raw", "I went to a wedding last month", "I'm going to a wedding next month"),
        (False, "tense_change", "fact", "User works at {emp}.", "User used to work at {emp}."),
        (False, "tense_change", "fact", "User lives in {city}.", "User lived in {city} until {year}."),
        (False, "tense_change", "raw", "I live in {city}", "I used to live in {city}"),
        (False, "tense_change", "raw", "My friend {friend} is getting married in {m1}", "My friend {friend} got married in {m1}"),
        (False, "relation_change", "fact", "User's sister {sis} lives in {city}.", "User's sister {sis} works in {city}."),
        (False, "relation_change", "fact", "User works on Project {proj}.", "User's manager leads Project {proj}."),
        (False, "relation_change", "raw", "My partner {partner} is {a_job}", "My partner {partner} wants to be {a_job}"),
        (False, "attribute_change", "fact", "User's dog {pet} is {n_word} years old.", "User's dog {pet} weighs {n_word} kilos."),
        (False, "attribute_change", "fact", "User has a yoga class on {day}s.", "User has a pottery class on {day}s."),
        (False, "attribute_change", "raw", "My standup is at 9:30", "My gym class is at 9:30"),
        (False, "cross_style", "mixed", "User's sister {sis} lives in {city}.", "My sister {sis} lives in {city2}"),
        (False, "cross_style", "mixed", "User is allergic to {allergen}.", "My partner is allergic to {allergen}"),
        (False, "cross_style", "mixed", "User works at {emp}.", "I used to work at {emp}"),
    ]

    def fill(template, w):
        slots = dict(w)
        slots.update({
            "a_role": art(w["role"]), "a_job": art(w["job"]), "a_job2": art(w["job2"]),
            "a_breed": art(w["breed"]), "n_word": NUM_WORDS[w["n"]],
            "breed_lower": w["breed"].lower(), "pet_lower": w["pet"].lower(),
        })
        return template.format(**slots)

    groups = {}
    for dup, kind, style, a, b in T:
        groups.setdefault((dup, kind), []).append((style, a, b))
    out, seen = [], set()
    for want_dup in (True, False):
        keys = [k for k in groups if k[0] == want_dup]
        made = 0
        stuck = 0
        while made < 150 and stuck < 1000:
            for key in keys:
                if made >= 150:
                    break
                style, a, b = rng.choice(groups[key])
                w = world()
                pa, pb = fill(a, w), fill(b, w)
                if rng.random() < 0.5:
                    pa, pb = pb, pa
                if pa == pb or (pa, pb) in seen or (pb, pa) in seen:
                    stuck += 1
                    continue
                seen.add((pa, pb))
                out.append({"a": pa, "b": pb, "duplicate": want_dup, "kind": key[1], "style": style})
                made += 1
    rng.shuffle(out)
    return out


# ---------------------------------------------------------------------------------------------

def generate():
    rng = random.Random(SEED)
    conversations = [build_user(rng, i) for i in range(N_USERS)]
    problems, leaks = validate(conversations)
    for conv in conversations:
        for q in conv["questions"]:
            del q["_answers"]
    pairs = dedup_pairs(random.Random(SEED + 1))
    conv_doc = {"seed": SEED, "generator": GENERATOR, "conversations": conversations}
    pairs_doc = {"seed": SEED + 1, "generator": GENERATOR, "pairs": pairs}
    return conv_doc, pairs_doc, problems, leaks


def dump(doc):
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def content_words(text):
    stop = {"the", "a", "an", "of", "in", "on", "at", "to", "for", "with", "and", "is", "are",
            "my", "i", "me", "do", "did", "does", "what", "where", "when", "who", "which", "how",
            "user", "user's", "s", "have", "has", "been", "am", "was", "it", "that", "so", "now",
            "their", "they", "our", "we", "be", "you", "your", "this", "about", "from"}
    return {w for w in re.findall(r"[\w']+", text.lower()) if w not in stop}


def stats(conv_doc, pairs_doc, sizes):
    convs = conv_doc["conversations"]
    turns = [t for c in convs for t in c["turns"]]
    facts = [f for t in turns for f in t["facts"]]
    qs = [q for c in convs for q in c["questions"]]
    filler = [t for t in turns if not t["facts"]]
    raw_items = sum(len(declarative_sentences(t["user"])) for t in turns)
    raw_noise = sum(len(declarative_sentences(t["user"])) for t in filler)
    per_user_facts = [sum(len(t["facts"]) for t in c["turns"]) for c in convs]
    per_user_q = [len(c["questions"]) for c in convs]
    sessions = [1 + max(t["session"] for t in c["turns"]) for c in convs]
    print(f"conversations {len(convs)}  sessions {sum(sessions)} ({min(sessions)}-{max(sessions)} per user)")
    print(f"turns {len(turns)}  filler {len(filler)} ({100 * len(filler) / len(turns):.0f}%)")
    print(f"facts {len(facts)}  per user {min(per_user_facts)}-{max(per_user_facts)} (mean {sum(per_user_facts) / len(convs):.0f})")
    print(f"raw items (declarative sentences) {raw_items}, of which from filler turns {raw_noise}")
    print(f"questions {len(qs)}  per user {min(per_user_q)}-{max(per_user_q)}")
    fact_text = {f["id"]: f["text"] for f in facts}
    turn_text = {t["id"]: t["user"] for t in turns}
    for style in ["paraphrase", "keywords", "entity", "temporal", "multi"]:
        sq = [q for q in qs if q["style"] == style]
        ev = sum(len(q["evidence_turns"]) for q in sq) / max(1, len(sq))

        def overlap(q, texts):
            qw = content_words(q["text"])
            ew = set().union(*[content_words(t) for t in texts])
            return len(qw & ew) / max(1, len(qw))
        of = sum(overlap(q, [fact_text[f] for f in q["evidence_facts"]]) for q in sq) / max(1, len(sq))
        ot = sum(overlap(q, [turn_text[t] for t in q["evidence_turns"]]) for q in sq) / max(1, len(sq))
        print(f"  {style:<10} {len(sq):4d}  evidence turns/q {ev:.2f}  question words found in evidence: facts {of:.2f}, raw {ot:.2f}")
    kinds = {}
    for p in pairs_doc["pairs"]:
        k = (p["duplicate"], p["kind"])
        kinds[k] = kinds.get(k, 0) + 1
    d = sum(1 for p in pairs_doc["pairs"] if p["duplicate"])
    print(f"dedup pairs {len(pairs_doc['pairs'])}  duplicate {d}  distinct {len(pairs_doc['pairs']) - d}")
    print("  " + ", ".join(f"{'dup' if k[0] else 'not'}:{k[1]} {v}" for k, v in sorted(kinds.items(), key=lambda kv: (not kv[0][0], kv[0][1]))))
    for name, size in sizes:
        print(f"{name} {size / 1e6:.2f} MB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the files on disk differ from a fresh run")
    ap.add_argument("--leaks", action="store_true", help="list answer terms that also occur outside a question's evidence")
    args = ap.parse_args()
    conv_doc, pairs_doc, problems, leaks = generate()
    for p in problems:
        print("PROBLEM", p, file=sys.stderr)
    if args.leaks:
        for leak in leaks:
            print("LEAK", leak, file=sys.stderr)
    files = [("conversations.json", dump(conv_doc)), ("dedup_pairs.json", dump(pairs_doc))]
    if args.check:
        stale = []
        for name, text in files:
            path = os.path.join(DATA, name)
            if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
                stale.append(name)
        if stale:
            print("stale: " + ", ".join(stale), file=sys.stderr)
            sys.exit(1)
        print("up to date")
        return
    if problems:
        sys.exit(f"{len(problems)} problems; nothing written")
    os.makedirs(DATA, exist_ok=True)
    for name, text in files:
        with open(os.path.join(DATA, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    print(f"{len(leaks)} answer terms also occur outside their question's evidence (--leaks lists them)")
    stats(conv_doc, pairs_doc, [(n, len(t.encode())) for n, t in files])


if __name__ == "__main__":
    main()
